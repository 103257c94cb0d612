"""SHA-256 of every source file the validation reads (a dask task per dataset, beside its plan task).

The report records them as ``source_checksums``: {dataset_id: {"path", "size", "sha256"}}, so a later step
(``census_builder publish``) can prove that what it ships is what was validated.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChecksumTask:
    """Hash one source file."""

    dataset_id: str
    path: str  # the local file read (an S3 source: its downloaded copy)
    name: str  # what the report calls it: the local path, or the source's s3:// URI


def source_checksum(task: ChecksumTask) -> dict[str, Any]:
    """{"path", "size", "sha256"} of one source file, read once (hashlib.file_digest)."""
    with open(task.path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        digest = hashlib.file_digest(f, "sha256")
    return {"path": task.name, "size": size, "sha256": digest.hexdigest()}
