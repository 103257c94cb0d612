"""The release's TileDB-SOMA objects: layout, writers and consolidation."""
