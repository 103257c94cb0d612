"""Where releases go: a local directory or ``s3://bucket/prefix`` (with an optional S3 endpoint).

A :class:`Destination` only names the place; the files there are read and written by
:mod:`census_builder.release.documents` (release.json, mirrors.json) and :mod:`census_builder.release.stores`
(the published objects).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from census_builder.errors import ReleaseDirectoryError


@dataclass(frozen=True)
class Destination:
    """A release destination: a local directory or ``s3://bucket/prefix`` (with an optional S3 endpoint)."""

    kind: Literal["local", "s3"]
    path: Path | None = None  # local
    bucket: str = ""  # s3
    prefix: str = ""  # s3: "" or "a/b" (no leading or trailing slash)
    endpoint_url: str | None = None

    @classmethod
    def parse(cls, dest: str | Path, *, endpoint_url: str | None = None) -> Destination:
        """Parse a local path, ``file://`` URI or ``s3://bucket/prefix`` (``endpoint_url`` for S3 only)."""
        text = str(dest)
        if text.startswith("s3://"):
            bucket, _, prefix = text[len("s3://") :].partition("/")
            if not bucket:
                raise ReleaseDirectoryError(f"{text!r}: an S3 destination needs a bucket, e.g. s3://bucket/prefix")
            return cls("s3", bucket=bucket, prefix=prefix.strip("/"), endpoint_url=endpoint_url)
        if "://" in text and not text.startswith("file://"):
            raise ReleaseDirectoryError(f"{text!r}: a destination is a local directory or s3://bucket/prefix")
        if text.startswith("file://"):
            text = text[len("file://") :]
        return cls("local", path=Path(text).resolve())

    @property
    def local_path(self) -> Path:
        """The directory of a local destination (ReleaseDirectoryError for S3)."""
        if self.path is None:
            raise ReleaseDirectoryError(f"{self} is not a local destination")
        return self.path

    def __str__(self) -> str:
        return str(self.path) if self.kind == "local" else f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def base_uri(self) -> str:
        """DEST as a URI with a trailing slash: what a mirror's ``base_uri`` must be."""
        if self.kind == "local":
            return self.local_path.as_uri().rstrip("/") + "/"
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    def key(self, relative: str) -> str:
        """Return the S3 key of ``relative`` (a path below DEST)."""
        return f"{self.prefix}/{relative}" if self.prefix else relative
