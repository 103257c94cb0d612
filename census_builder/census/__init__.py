"""The Census rules, pure and I/O-free: schema loading, filters, count checks, statistics, tissue_general.

The independent validator (``validation/``) mirrors these rules with its own code; it imports none of them.
"""
