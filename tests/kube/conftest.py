"""The S3-compatible server fixtures (moto, on loopback) for the Kubernetes backend's end-to-end test."""

from tests.integration.conftest import s3_bucket, s3_server, s3_session_server  # noqa: F401
