"""The reference builder as a measuring instrument (issue #15).

The reference builder is chanzuckerberg/cellxgene-census ``tools/cellxgene_census_builder``: not on PyPI, not
in our lock and never run in CI. ``install`` puts a clone of it in its own virtual environment outside the
repository, ``run`` builds a release with it from one of our manifests (offline), and ``compare`` prints every
difference between two Census releases, whatever their soma_joinid numbering.
"""
