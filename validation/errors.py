"""Why a validation could not run at all (as opposed to a check that failed, which is a finding).

Each is raised before the validation touches anything (the report, the release's folder); ``python -m
validation`` prints the message and exits 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """An input of the validation is missing or unusable; the message names it and what to do."""


class ReleaseNotFoundError(InputError):
    """The release URI names nothing (a local path that does not exist)."""


class CheckpointBusyError(InputError):
    """Another validation holds the checkpoint beside the same report (two runs would mix their results)."""
