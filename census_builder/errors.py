"""The one exception tree of census_builder. Every failure a user can cause raises a subclass of
:class:`CensusBuilderError` whose message says what was wrong, where, and what to do."""

from __future__ import annotations

from typing import Any


class CensusBuilderError(Exception):
    """Root of every error census_builder raises on purpose."""


class UsageError(CensusBuilderError):
    """A command-line value is invalid (a version name, an option); the command line exits 2 for it."""


class ManifestError(CensusBuilderError):
    """The manifest file itself is malformed (header, rows, duplicates, URIs)."""


class InputError(CensusBuilderError):
    """A source dataset is missing, unreadable or violates the dataset schema the build depends on."""

    def __init__(self, dataset_id: str, reason: str, *, uri: str = "", field: str = "") -> None:
        self.dataset_id = dataset_id
        self.reason = reason
        self.uri = uri
        self.field = field
        where = f"dataset {dataset_id!r}"
        if uri:
            where += f" ({uri})"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str], dict[str, str]]:
        # Travels between dask workers and the driver intact.
        return (InputError, (self.dataset_id, self.reason), {"uri": self.uri, "field": self.field})

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        self.__init__(self.dataset_id, self.reason, **(state or {}))  # type: ignore[misc]

    def to_json(self) -> dict[str, str]:
        """Return the fields as a JSON object (how the build report lists a dataset left out)."""
        return {"dataset_id": self.dataset_id, "uri": self.uri, "field": self.field, "reason": self.reason}


class PreflightError(CensusBuilderError):
    """Several input problems, all found before anything was written; ``problems`` lists each."""

    DEFAULT_HINT = "Fix the sources or the manifest, or re-run with --exclude-invalid to build without them."

    def __init__(self, problems: list[InputError], hint: str | None = None) -> None:
        self.problems = problems
        self.hint = hint or self.DEFAULT_HINT
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} input problem(s) found before writing anything:\n{lines}\n{self.hint}")

    def __reduce__(self) -> tuple[type[PreflightError], tuple[list[InputError], str]]:
        return (PreflightError, (self.problems, self.hint))


class ReleaseExistsError(CensusBuilderError):
    """The target release version is already complete (releases are immutable)."""


class BuildLockedError(CensusBuilderError):
    """Another live build holds the lock on this version's build directory."""


class BuildStateError(CensusBuilderError):
    """The build directory's recorded state is inconsistent with this run (e.g. another manifest)."""


class SchemaError(CensusBuilderError):
    """The Census schema data file is missing or malformed."""


class StorageError(CensusBuilderError):
    """Reading or writing local or S3 storage failed after retries."""


class PublishRefusedError(CensusBuilderError):
    """The build is not publishable: incomplete, not validated, or failed validation."""


class ReleaseDirectoryError(CensusBuilderError):
    """release.json is malformed, or a change to it breaks a rule (alias target, retraction, names)."""


class HostCheckError(CensusBuilderError):
    """This machine lacks what the build needs (disk space in the workdir's filesystem)."""


class TooManyExcludedError(CensusBuilderError):
    """``--exclude-invalid`` would drop more than ``--max-excluded`` of the manifest's datasets (exit 3)."""


class GeneExpressionError(CensusBuilderError):
    """The Gene Expression data (the cube, its marker genes) cannot be derived from what was given."""


class ReportError(CensusBuilderError):
    """The report's inputs are missing or malformed (the release, or its gene_expression/ files), or --out
    names a directory that is not a report."""
