"""The one S3 client factory: endpoint resolution and the retry / timeout policy every S3 client gets."""

from __future__ import annotations

import pytest

from census_builder.runtime import s3
from census_builder.sources import staging


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def test_endpoint_argument_then_s3_variable_then_generic_variable(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert s3.s3_endpoint() is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:9000")
    assert s3.s3_endpoint() == "http://generic:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:9000")
    assert s3.s3_endpoint() == "http://s3-only:9000"
    assert s3.s3_endpoint("http://given:9000") == "http://given:9000"


def test_client_policy_for_a_custom_endpoint(aws_env: None) -> None:
    client = s3.s3_client("http://127.0.0.1:9000", max_pool_connections=32)
    config = client.meta.config
    assert client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert client.meta.region_name == s3.S3_DEFAULT_REGION
    assert config.retries == {"total_max_attempts": s3.S3_MAX_ATTEMPTS + 1, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (s3.S3_CONNECT_TIMEOUT, s3.S3_READ_TIMEOUT)
    assert config.max_pool_connections == 32
    assert config.s3 == {"addressing_style": "path"}


def test_aws_itself_is_addressed_as_boto3_chooses(aws_env: None) -> None:
    client = s3.s3_client()
    assert "amazonaws.com" in client.meta.endpoint_url
    assert client.meta.config.s3 is None
    assert client.meta.config.max_pool_connections == s3.S3_POOL_CONNECTIONS


def test_staging_uses_the_shared_factory(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://staging-store:9000")
    client = staging.s3_client()
    assert client.meta.endpoint_url == "http://staging-store:9000"
    assert client.meta.config.retries == {"total_max_attempts": s3.S3_MAX_ATTEMPTS + 1, "mode": "standard"}
