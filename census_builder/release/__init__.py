"""Release management: publish, object stores, the release directory (release.json), notes."""
