"""The report command: a static site beside a release, opened from disk (file://, no server, no network).

    DIR/VERSION/report/           (or --out)
      index.html                  release overview: cells per organism, assay, tissue_general, disease; datasets
                                  with their collections; census and schema versions (read from census_info and
                                  obs columns with tiledbsoma, never X)
      gene_expression.html        the CELLxGENE Discover dot plot (rows cell types, columns genes; colour = mean
                                  expression, size = fraction expressing), organism / tissue / gene pickers and a
                                  group-by (sex, self_reported_ethnicity, disease)
      markers.html                the top marker genes per tissue x cell type; a cell type's markers open in the
                                  dot plot
      plotly.min.js, PLOTLY_LICENSE.txt   plotly.js as the ``plotly`` package ships it (MIT)
      report.css, report.js, gene_expression.js, markers.js   this package's static files
      data/                       the data as ``.js`` files that assign to ``window.CB_DATA`` (Chromium refuses
                                  fetch() of file:// URLs; a <script> tag loads them): index.js, one index per
                                  organism and one shard per organism x tissue x grouping x gene block
                                  (:mod:`census_builder.report.expression`)
      report.json                 what was written (marks the directory as a report: --out refuses other dirs)

The Gene Expression data comes from ``DIR/VERSION/gene_expression/`` (the ``gene-expression`` command); without
it the pages say how to produce it.
"""

from __future__ import annotations

from census_builder.report.site import write_report

__all__ = ["write_report"]
