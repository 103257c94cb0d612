"""What the release must hold, re-derived from the sources with the validator's own copy of the Census rules.

The schema data, cell filter, tissue_general, statistics, X normalization, per-dataset plans and the model.
"""
