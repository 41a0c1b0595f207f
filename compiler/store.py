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
