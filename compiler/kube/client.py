"""The API client: configuration, one retried call, and the labels every stage object carries."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from xtrc.errors import XtrcError
from xtrc.store import uri_scheme

SHARED_FS_ENV = "XTRC_KUBE_SHARED_FILESYSTEM"
"""Set to 1 only when every pod sees this machine's filesystem at the same paths (tests, single-node clusters)."""
EXPERIMENT_LABEL = "xtrc.dev/experiment"
STAGE_KEY_LABEL = "xtrc.dev/stage-key"
COMPONENT_LABEL = "app.kubernetes.io/component"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
STAGE_CONTAINER = "stage"
CONFIG_ERROR = 2
REQUEST_TIMEOUT = 30
STRICT = {"field_validation": "Strict"}
"""For every create and replace: a field the server does not know is an error, not silently
dropped (the server's default, Warn, drops it and only warns), so a manifest means what it says."""
_LOCAL_SCHEMES = ("file", "memory", "local")
_ATTEMPTS = 4  # API calls retried on throttling, server errors and dropped connections


# --- the client ------------------------------------------------------------------------------


def api_client(context: str | None = None) -> Any:
    """A configured ``kubernetes.client.ApiClient``: in-cluster inside a pod (unless a context is
    asked for), else from kubeconfig (``$KUBECONFIG``, colon-separated files allowed; else
    ``~/.kube/config``)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
        try:
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        except ConfigException:
            pass  # a pod without a token: try kubeconfig
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        config.load_kube_config(config_file=path, context=context, client_configuration=cfg,
                                persist_config=False)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = f"context {context!r} in {path}" if context else path
        raise XtrcError(f"cannot load the Kubernetes configuration ({where}): {exc}; "
                        "set KUBECONFIG or pass --context") from None
    return client.ApiClient(cfg)


class ClusterError(XtrcError):
    """The cluster refused or could not be reached: exit 1, so an orchestrator Job retries (exit 2,
    a configuration error, does not)."""

    exit_code = 1


def call(fn: Callable[..., Any], *args: Any, what: str, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
    """One API call, retried on 429/5xx and dropped connections; errors become ClusterError.
    A status in ``ok`` returns the ApiException instead of raising."""
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    delay = 0.5
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status in ok:
                return exc
            if (exc.status == 429 or (exc.status or 0) >= 500) and attempt < _ATTEMPTS:
                time.sleep(delay)
                delay *= 2
                continue
            raise ClusterError(f"{what}: {api_message(exc)}") from None
        except HTTPError as exc:
            if attempt < _ATTEMPTS:
                time.sleep(delay)
                delay *= 2
                continue
            raise ClusterError(f"{what}: cannot reach the Kubernetes API ({type(exc).__name__}: {exc})") from None
    raise AssertionError("unreachable")


def api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body)
        return f"{exc.status} {body.get('reason', '')}: {body.get('message', '')}".strip()
    except (TypeError, ValueError, AttributeError):
        return f"{exc.status} {exc.reason}"


def is_api_error(result: Any) -> bool:
    """Whether a :func:`call` returned (rather than raised) an ApiException: a status in its ``ok``."""
    from kubernetes.client import ApiException

    return isinstance(result, ApiException)


def check_store(uri: str) -> None:
    """Stage pods must reach the store: object storage, or a shared filesystem only when told."""
    scheme = uri_scheme(uri)
    if scheme not in _LOCAL_SCHEMES:
        return
    if scheme == "file" and os.environ.get(SHARED_FS_ENV) == "1":
        return
    raise XtrcError(
        f"the store {uri} is on this machine's {'filesystem' if scheme == 'file' else 'memory'}, which the "
        "cluster's pods cannot see; use object storage for the Kubernetes backend (s3://, gs://, az://: "
        "storage.uri or --store), or `xtrc run` to run here. "
        f"(Only for tests and single-node clusters whose pods see this path: {SHARED_FS_ENV}=1.)")
