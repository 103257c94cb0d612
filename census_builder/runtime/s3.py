"""The one S3 client factory: the same retry and timeout policy for staging, publishing and validation.

The endpoint is the argument, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (S3-compatible stores:
MinIO, moto, on-premises); credentials and region come from the usual AWS environment.
"""

from __future__ import annotations

import os
from typing import Any

S3_MAX_ATTEMPTS = 8  # botocore's retries.max_attempts: retries after a request's first try ("standard": backoff)
S3_CONNECT_TIMEOUT = 10  # seconds to open a connection
S3_READ_TIMEOUT = 60  # seconds without a byte from an open connection
S3_DEFAULT_REGION = "us-east-1"  # when the environment names none (S3 answers there for every bucket)
S3_POOL_CONNECTIONS = 10  # botocore's default; publishing passes more for its parallel uploads


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """``endpoint_url``, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``; None for AWS itself."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_client(endpoint_url: str | None = None, *, max_pool_connections: int = S3_POOL_CONNECTIONS) -> Any:
    """Return a boto3 S3 client with the project's retry and timeout policy.

    A custom endpoint (see :func:`s3_endpoint`) is addressed path-style, as S3-compatible stores expect.
    """
    import boto3
    from botocore.config import Config

    endpoint = s3_endpoint(endpoint_url)
    config = Config(
        retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=S3_CONNECT_TIMEOUT,
        read_timeout=S3_READ_TIMEOUT,
        max_pool_connections=max_pool_connections,
        s3={"addressing_style": "path"} if endpoint else None,
    )
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=endpoint, region_name=session.region_name or S3_DEFAULT_REGION, config=config
    )
