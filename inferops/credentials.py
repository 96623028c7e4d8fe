"""Whether this process can act on an environment's cloud, checked before Terraform runs.

Contract: :func:`check` returns a one-line description of the identity found (an AWS
caller ARN, a Google project) or raises :class:`CredentialsError` saying what to set.
AWS is asked once (STS ``GetCallerIdentity``), so expired or revoked keys fail here too,
before a plan is made; for Google the application-default credentials are found and
loaded (Terraform's own first call tells whether Google accepts them). Each cloud's SDK
is an optional extra (``inferops[aws]``, ``inferops[gcp]``), imported only when that
cloud is checked.
"""

from __future__ import annotations

from typing import Any


class CredentialsError(Exception):
    """No usable credentials for a cloud; the message says what to set."""


def check(cloud: str) -> str:
    """Describe the identity this process acts as on ``cloud``, or raise CredentialsError."""
    if cloud == "local":
        return "local: no cloud credentials needed"
    if cloud == "aws":
        return _aws()
    if cloud == "gcp":
        return _gcp()
    raise CredentialsError(f"unknown cloud {cloud!r}: expected local, aws or gcp")


def _aws() -> str:
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise CredentialsError(
            "checking AWS credentials needs boto3: pip install 'inferops[aws]'"
        ) from None
    session: Any = boto3.Session()
    if session.get_credentials() is None:
        raise CredentialsError(
            "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), or run where an instance role or web identity "
            "provides them; nothing was planned"
        )
    try:
        identity = session.client("sts").get_caller_identity()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CredentialsError(
            f"AWS refused the credentials ({error.get('Code', 'error')}: "
            f"{error.get('Message', exc)}): refresh them (e.g. `aws sso login`) and retry; "
            "nothing was planned"
        ) from None
    except BotoCoreError as exc:
        raise CredentialsError(
            f"cannot check AWS credentials: {exc}; nothing was planned"
        ) from None
    return f"aws: {identity['Arn']} (account {identity['Account']})"


def _gcp() -> str:
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        raise CredentialsError(
            "checking Google credentials needs google-auth: pip install 'inferops[gcp]'"
        ) from None
    try:
        _, project = google.auth.default()
    except DefaultCredentialsError:
        raise CredentialsError(
            "no Google credentials found: run `gcloud auth application-default login`, or "
            "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run where "
            "Workload Identity provides them; nothing was planned"
        ) from None
    return f"gcp: application-default credentials (project {project or 'not set'})"
