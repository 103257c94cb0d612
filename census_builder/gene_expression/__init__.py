"""Gene Expression data derived from a release: the cube, marker genes."""
