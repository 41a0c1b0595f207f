"""The store layout, defined once, and the few reads the control plane makes of it.

::

    stages/<key>/stage.json        resolved stage config
    stages/<key>/checkpoints/...   resumable training state
    stages/<key>/model/            final weights + tokenizer, for downstream stages
    stages/<key>/metrics.json      per-language metrics + run info
    stages/<key>/predictions/      per-language predictions with per-example scores
    stages/<key>/_SUCCESS          written last; its presence alone means "done"
    experiments/<name>/spec.yaml   the spec as applied
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

STAGES = "stages"
EXPERIMENTS = "experiments"
SUCCESS = "_SUCCESS"
STAGE_JSON = "stage.json"
METRICS_JSON = "metrics.json"
MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
PREDICTIONS_DIR = "predictions"
LOG_FILE = "log.txt"


# Credential files a mounted storage Secret may hold → the fsspec option each one sets (the same
# files the runtime reads: xtrc_runtime.storage).
SECRET_FILES = {
    "s3": {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
           "AWS_ENDPOINT_URL": "endpoint_url"},  # the endpoint as the pods see it (e.g. in-cluster MinIO)
    "gs": {"service-account.json": "token"},
    "gcs": {"service-account.json": "token"},
    "az": {"AZURE_STORAGE_ACCOUNT_NAME": "account_name", "AZURE_STORAGE_ACCOUNT_KEY": "account_key",
           "AZURE_STORAGE_CONNECTION_STRING": "connection_string"},
    "abfs": {"AZURE_STORAGE_ACCOUNT_NAME": "account_name", "AZURE_STORAGE_ACCOUNT_KEY": "account_key",
             "AZURE_STORAGE_CONNECTION_STRING": "connection_string"},
}


def credential_options(uri: str, options: dict[str, Any], secret_dir: str | None) -> dict[str, Any]:
    """``options`` plus the credentials a mounted Secret holds as files in ``secret_dir`` (how the
    in-cluster orchestrator reads the store, like the stages). The values are never logged."""
    merged = dict(options)
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    if secret_dir and os.path.isdir(secret_dir):
        for filename, option in SECRET_FILES.get(scheme, {}).items():
            path = os.path.join(secret_dir, filename)
            if os.path.isfile(path):
                if option == "token" and scheme != "s3":
                    merged[option] = path
                else:
                    with open(path, encoding="utf-8") as f:
                        merged[option] = f.read().strip()
    return merged


def local_cache_dir() -> str:
    """xtrc's local cache: $XTRC_CACHE, else $XDG_CACHE_HOME/xtrc, else ~/.cache/xtrc."""
    if os.environ.get("XTRC_CACHE"):
        return os.environ["XTRC_CACHE"]
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "xtrc")


def normalize_uri(uri: str) -> str:
    """A bare path becomes an absolute file:// URI; other URIs lose a trailing slash."""
    if "://" not in uri:
        return "file://" + os.path.abspath(os.path.expanduser(uri))
    return uri.rstrip("/")


@dataclass(frozen=True)
class StoreLayout:
    root: str

    def stage(self, key: str, *parts: str) -> str:
        return "/".join((self.root, STAGES, key, *parts))

    def success(self, key: str) -> str:
        return self.stage(key, SUCCESS)

    def experiment(self, name: str, *parts: str) -> str:
        return "/".join((self.root, EXPERIMENTS, name, *parts))


@dataclass
class Store:
    """An fsspec-backed store root (file://, s3://, gs://, az://, memory://)."""

    uri: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.uri = normalize_uri(self.uri)
        self.layout = StoreLayout(self.uri)

    @property
    def fs(self) -> Any:
        import fsspec

        fs, _ = fsspec.core.url_to_fs(self.uri, **self.options)
        return fs

    def done_keys(self) -> set[str]:
        """Keys of every stage whose _SUCCESS exists, from one glob (local: one directory walk;
        S3: one list request per stage prefix, no object reads).

        Stages commit from other processes, so the listing is asked of the store each time, not
        of fsspec's listings cache (the instance is shared and would answer stale)."""
        fs = self.fs
        fs.invalidate_cache()
        pattern = self.layout.stage("*", SUCCESS)
        try:
            found = fs.glob(pattern)
        except FileNotFoundError:
            return set()
        return {path.rstrip("/").split("/")[-2] for path in found}
