"""Release management: publish a validated build (publish, claim, stores), the release directory and mirrors.

Also where a build was published (published.json) and the release notes (notes, notes_compare, notes_figures).
"""
