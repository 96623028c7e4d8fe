"""Cloud credentials, checked before Terraform runs.

AWS: STS answered by moto in server mode (a real HTTP server on loopback). Google: the
application-default credentials are loaded from a service-account key file made here;
Google's token endpoint cannot be reached from these machines, so nothing is asked of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.server import ThreadedMotoServer

from inferops.credentials import CredentialsError, check

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A process with no AWS credentials anywhere boto3 looks (instance metadata off)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def sts(no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint)
    yield endpoint
    server.stop()


def test_aws_credentials_are_checked_against_sts(sts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY123456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    identity = check("aws")
    assert identity.startswith("aws: arn:aws:")
    assert "(account 123456789012)" in identity


def test_no_aws_credentials_say_what_to_set(sts: str) -> None:
    with pytest.raises(CredentialsError, match="no AWS credentials found: set AWS_PROFILE"):
        check("aws")


def test_an_unreachable_sts_is_a_clear_error(
    no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY123456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(CredentialsError, match="cannot check AWS credentials"):
        check("aws")


@pytest.fixture
def no_google_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on Google's VMs: do not probe metadata
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")


def test_no_google_credentials_say_what_to_run(no_google_credentials: None) -> None:
    with pytest.raises(CredentialsError, match="gcloud auth application-default login"):
        check("gcp")


def test_a_service_account_key_file_is_found(
    no_google_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "inferops-test",
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": "pipeline@inferops-test.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    assert check("gcp") == "gcp: application-default credentials (project inferops-test)"


def test_the_local_cloud_needs_nothing_and_an_unknown_one_is_refused() -> None:
    assert check("local").startswith("local:")
    with pytest.raises(CredentialsError, match="unknown cloud 'azure'"):
        check("azure")
