"""The Census rules, pure and I/O-free: schema, filters, statistics, normalization, tissue_general."""
