"""The store layout, defined once, and the few reads the control plane makes of it.

::

    stages/<key>/stage.json        resolved stage config
    stages/<key>/checkpoints/...   resumable training state
    stages/<key>/model/            final weights + tokenizer, for downstream stages
    stages/<key>/metrics.json      per-language metrics + run info
    stages/<key>/predictions/      per-language predictions with per-example scores
    stages/<key>/_SUCCESS          written last; its presence alone means "done"
    stages/<key>/progress.json     how far a running stage is: training step/total or evaluation
                                   languages done/total, ETA
    stages/<key>/lease.json        held by the one process running the stage (xtrc.lease)
    stages/<key>/log.txt           the stage's log, copied when it ends (local runs)
    experiments/<name>/spec.yaml   the spec as applied
    experiments/<name>/lease.json  held by the one orchestration loop of the experiment
    experiments/<name>/revisions.json  the hub commits the experiment's keys use (xtrc.revisions)
    experiments/<name>/results/    the results index: done cells' metrics and checks, a few shards (a cache)
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from xtrc.errors import XtrcError

STAGES = "stages"
EXPERIMENTS = "experiments"
SUCCESS = "_SUCCESS"
STAGE_JSON = "stage.json"
METRICS_JSON = "metrics.json"
MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
PREDICTIONS_DIR = "predictions"
LOG_FILE = "log.txt"
PROGRESS_FILE = "progress.json"
LEASE_FILE = "lease.json"
REVISIONS_FILE = "revisions.json"
RESULTS_DIR = "results"
CACHE_DIR = "cache"
"""Content-addressed artefacts shared by stages (e.g. ``cache/tokenizers/<digest>.json``): a
name is a hash of what made it, so any copy is as good as another and none is ever stale."""
KEY_DIGITS = "0123456789abcdef"
"""Stage keys are hex digests: listings over a big store go one first digit each, in parallel."""


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


def uri_scheme(uri: str) -> str:
    """A store URI's scheme; a bare path is a local file."""
    return uri.split("://", 1)[0] if "://" in uri else "file"


def credential_options(uri: str, options: dict[str, Any], secret_dir: str | None) -> dict[str, Any]:
    """``options`` plus the credentials a mounted Secret holds as files in ``secret_dir`` (how the
    in-cluster orchestrator reads the store, like the stages). The values are never logged."""
    merged = dict(options)
    scheme = uri_scheme(uri)
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

    def results(self, name: str, *parts: str) -> str:
        return self.experiment(name, RESULTS_DIR, *parts)


def marker_identity(info: dict[str, Any]) -> str:
    """What tells one commit of a stage from the next, from a listing's entry for its _SUCCESS:
    the object's ETag (or generation hash) and modification time, and its size. The runtime
    writes a new run id into every _SUCCESS, so a re-run stage's marker differs even where a
    store reports no ETag."""
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or ""
    when = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("last_modified") or ""
    return f"{str(etag).strip(chr(34))}|{when}|{info.get('size', '')}"


@dataclass
class Store:
    """An fsspec-backed store root (file://, s3://, gs://, az://, memory://)."""

    uri: str
    options: dict[str, Any] = field(default_factory=dict)
    _fold_paused_until: float = field(default=0.0, init=False, repr=False, compare=False)
    """Until this ``time.monotonic()``, list plainly: the server mishandled a folded listing
    (:data:`FOLD`; for good), or refused one that a plain listing then answered (for
    :data:`FOLD_PAUSE` seconds: a refusal and a passing fault look alike from here)."""

    def __post_init__(self) -> None:
        self.uri = normalize_uri(self.uri)
        self.layout = StoreLayout(self.uri)

    @property
    def fs(self) -> Any:
        return _filesystem(self.uri, self.options)

    def reader_fs(self, workers: int) -> Any:
        """The store's filesystem tuned for many small whole-object reads at once: on S3, one GET
        per object (no HEAD for its size first) and a connection pool as large as ``workers``."""
        if uri_scheme(self.uri) not in ("s3", "s3a"):
            return self.fs
        options = dict(self.options)
        options.setdefault("max_concurrency", 1)
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", max(10, workers))
        options["config_kwargs"] = config
        return _filesystem(self.uri, options)

    def done_keys(self) -> set[str]:
        """Keys of every stage whose _SUCCESS exists."""
        return set(self.done_markers())

    def done_markers(self, workers: int = len(KEY_DIGITS)) -> dict[str, str]:
        """Every done stage's key → the identity of its _SUCCESS (:func:`marker_identity`), from
        listings alone: local, one directory scan; object stores, one flat listing per first key
        digit, ``workers`` at a time (no request per stage, no object reads).

        Stages commit from other processes, so the store is asked each time, never fsspec's
        listings cache (the instance is shared and would answer stale)."""
        scheme = uri_scheme(self.uri)
        if scheme == "file":
            return _local_markers(self.uri[len("file://"):] + "/" + STAGES)
        fs = self.reader_fs(workers)
        fs.invalidate_cache()
        stages = self.layout.stage("").rstrip("/")
        if scheme in ("s3", "s3a", "gs", "gcs"):  # listings by key prefix
            def list_digit(digit: str) -> dict[str, dict[str, Any]]:
                if scheme in ("s3", "s3a") and time.monotonic() >= self._fold_paused_until:
                    try:
                        return _s3_folded(fs, stages, digit)
                    except FoldNotHonoured:
                        self._fold_paused_until = float("inf")
                    except Exception:
                        # Refused, or the store is unreachable: then the plain listing fails too and
                        # its error goes to the caller, and folding stays on for the next call.
                        listing = _find(fs, stages, prefix=digit)
                        self._fold_paused_until = max(self._fold_paused_until, time.monotonic() + FOLD_PAUSE)
                        return listing
                return _find(fs, stages, prefix=digit)

            with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="xtrc-list") as pool:
                parts = list(pool.map(list_digit, KEY_DIGITS))
            listing = {name: info for part in parts for name, info in part.items()}
        else:
            listing = _find(fs, stages)
        markers = {}
        for name, info in listing.items():
            parts = name.rstrip("/").split("/")
            if len(parts) >= 3 and parts[-1] == SUCCESS and parts[-3] == STAGES:
                markers[parts[-2]] = marker_identity(info)
        return markers


    def check_bucket(self) -> None:
        """:class:`MissingBucket` when the store's bucket (or container) does not exist; xtrc never
        creates one. Local and memory stores have none."""
        bucket = bucket_of(self.uri)
        if bucket is None:
            return
        fs = self.fs
        fs.invalidate_cache()
        if not fs.exists(bucket):
            raise MissingBucket(self.uri)


class MissingBackend(XtrcError):
    """The fsspec implementation of the store's protocol is not installed (or does not import)."""

    def __init__(self, uri: str, cause: ImportError):
        self.uri = uri
        super().__init__(f"cannot read store {uri}: {cause}; install its fsspec backend "
                         "(pip install 'xtrc[s3]' for s3://)")


def _filesystem(uri: str, options: dict[str, Any]) -> Any:
    """The fsspec filesystem of ``uri``. Only loading the protocol's implementation is translated
    into :class:`MissingBackend`: an ImportError raised later, while reading, is a bug and stays one."""
    import fsspec

    try:
        fs, _ = fsspec.core.url_to_fs(uri, **options)
    except ImportError as exc:
        raise MissingBackend(uri, exc) from exc
    return fs


class MissingBucket(FileNotFoundError):
    """The store's bucket does not exist (a configuration error: xtrc never creates buckets)."""

    def __init__(self, uri: str):
        self.uri = uri
        bucket = bucket_of(uri)
        super().__init__(f"the bucket {bucket!r} of store {uri} does not exist; xtrc never creates buckets: "
                         f"create it (e.g. `aws s3 mb s3://{bucket}`) or point storage.uri / --store at one that exists")


OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "adl")


def bucket_of(uri: str) -> str | None:
    """The bucket (container) of an object-store URI; None for local and memory stores."""
    if uri_scheme(uri) not in OBJECT_STORES:
        return None
    return uri.split("://", 1)[1].split("/", 1)[0] or None


def temporary_name(path: str) -> str:
    return f"{path}.tmp-{uuid.uuid4().hex[:8]}"


def write_atomic(fs: Any, path: str, data: bytes, tmp: str | None = None) -> None:
    """Write ``path`` whole or not at all: to a temporary name (``tmp``; a retried write passes the
    same one, so a failed attempt leaves nothing behind), then moved into place. Every write a
    reader may trust goes through here, the runtime's too."""
    tmp = tmp or temporary_name(path)
    if _has_directories(fs):  # object stores have none; their makedirs would create a missing bucket
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
    except FileNotFoundError as exc:
        uri = _uri_of(fs, path)
        bucket = bucket_of(uri)
        if bucket is not None and not fs.exists(bucket):
            raise MissingBucket(uri) from exc
        raise
    fs.mv(tmp, path)


def _has_directories(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(p in ("file", "local") for p in protocols)


def _uri_of(fs: Any, path: str) -> str:
    if "://" in path:
        return path
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return f"{protocol}://{path}"


def _find(fs: Any, path: str, **kwargs: Any) -> dict[str, dict[str, Any]]:
    try:
        return fs.find(path, detail=True, **kwargs)
    except FileNotFoundError:
        return {}


FOLD = "o"
"""The delimiter of S3 marker listings. Every name in a stage folder but ``_SUCCESS`` holds an "o"
(checkpoints/, log.txt, metrics.json, model/, predictions/, stage.json), and neither ``_SUCCESS``
nor a hex key does. S3 folds each key at its first delimiter into one common prefix, so a listing
returns every marker whole and each stage's other objects as a few prefixes ("<key>/predictio",
"<key>/metrics.jso", ...): one entry per name, not one per prediction file or checkpoint shard.
Correctness never rests on it: a name without an "o" is simply listed, and skipped. Some
S3-compatible servers accept only "/" (S3 directory buckets, several gateways) or page wrongly
with other delimiters; a refused request, a prefix not ending in "o" or a repeated page token
makes the store fall back to plain listings."""


FOLD_PAUSE = 600.0
"""Seconds a refused folded listing is not tried again."""


class FoldNotHonoured(OSError):
    """The server answered a folded listing in a way that does not follow S3's delimiter rules."""


def _s3_folded(fs: Any, stages: str, digit: str) -> dict[str, dict[str, Any]]:
    """Objects under ``stages/<digit>`` that no "o" folds away (:data:`FOLD`), by full name."""
    bucket, path, _ = fs.split_path(stages)
    request = {"Bucket": bucket, "Prefix": f"{path}/{digit}" if path else digit, "Delimiter": FOLD}
    found: dict[str, dict[str, Any]] = {}
    while True:
        page = fs.call_s3("list_objects_v2", **request)
        folded = [p.get("Prefix", "") for p in page.get("CommonPrefixes", [])]
        if any(not prefix.endswith(FOLD) for prefix in folded):
            raise FoldNotHonoured(f"the server folded keys at other than {FOLD!r}: {folded[:3]}")
        for item in page.get("Contents", []):
            found[f"{bucket}/{item['Key']}"] = {"ETag": item.get("ETag"), "LastModified": item.get("LastModified"),
                                                "size": item.get("Size")}
        if not page.get("IsTruncated"):
            return found
        if page.get("NextContinuationToken") in (None, request.get("ContinuationToken")):
            raise FoldNotHonoured("the server repeated its page token")
        request["ContinuationToken"] = page["NextContinuationToken"]


def _local_markers(stages_dir: str) -> dict[str, str]:
    markers = {}
    try:
        entries = list(os.scandir(stages_dir))
    except FileNotFoundError:
        return {}
    for entry in entries:
        try:
            st = os.stat(os.path.join(entry.path, SUCCESS))
        except (FileNotFoundError, NotADirectoryError):
            continue
        markers[entry.name] = marker_identity({"mtime": st.st_mtime_ns, "size": st.st_size})
    return markers
