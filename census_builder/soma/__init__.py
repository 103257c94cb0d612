"""The release's TileDB-SOMA objects: layout (every URI), writers, platform settings, consolidation.

layout knows where each object lives; writers create and write them; consolidation maintains fragments.
"""
