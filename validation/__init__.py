"""The independent Census release validator.

Proves a release against the Census schema (the data in ``census_schema``) and against the source H5ADs
named in the build manifest, re-deriving every expected value from the sources with its own code: it
imports none of ``census_builder``'s rules, only its infrastructure (``census_builder.runtime``: the dask
cluster pieces, the task runner, the S3 client), so one bug cannot hide itself in both places.

    from validation import validate_release
    report = validate_release("census-build/2024-01-01/soma", "manifest.csv", workers=4)
    report.passed, report.checks, report.to_json()

Command line: ``python -m validation RELEASE_SOMA_URI --manifest MANIFEST.csv [--census-schema V] [--workers N]
[--report PATH]`` (the Census schema: the one the release records, unless ``--census-schema`` names one).
An interrupted validation resumes from its checkpoint (``.validation/`` beside the report) when run again.

Layout: ``core`` runs the steps in order on a shared ``run.Run``: ``plan`` (what each dataset must give),
``structure``, ``contents/`` (obs and X, in dask tasks), ``tables`` (+ ``census_info``), ``consistency``.
They read through ``inputs/`` (manifest, source H5ADs, the release), take expectations from ``expected/``
(the validator's own schema view, filters, statistics, normalization, per-dataset plans) and compare with
``checks/``;
``tasks``, ``cluster``, ``checkpoint``, ``progress`` and ``report`` are the infrastructure.
"""

from __future__ import annotations

from validation.core import default_report_path, validate_release
from validation.errors import CheckpointBusyError, InputError, ReleaseNotFoundError
from validation.inputs.manifest import ManifestError
from validation.report import CHECKS, CheckResult, Finding, ValidationReport

__all__ = [
    "CHECKS",
    "CheckResult",
    "CheckpointBusyError",
    "Finding",
    "InputError",
    "ManifestError",
    "ReleaseNotFoundError",
    "ValidationReport",
    "default_report_path",
    "validate_release",
]
