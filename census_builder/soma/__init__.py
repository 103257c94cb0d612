"""The release's TileDB-SOMA objects: where they live (layout), how they are created and written (writers),
their TileDB settings (platform) and consolidation / fragment maintenance (consolidation)."""
