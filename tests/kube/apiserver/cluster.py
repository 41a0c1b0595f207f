"""``FakeCluster``: the server, its store and simulator, and the hooks tests use."""

from __future__ import annotations

import atexit
import collections
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from typing import Any, Callable
from urllib.parse import urlsplit

from tests.kube import sandbox as sandbox_module

from .objects import _clone
from .resources import BY_PLURAL, JOBS, NAMESPACES, PODS, ApiError
from .selectors import parse_label_selector
from .server import _Handler, _HTTPServer
from .simulator import _Simulator
from .store import Store


class FakeCluster:
    """A Kubernetes API server on 127.0.0.1 with a simulated Job controller, scheduler and kubelet.

    ``FakeCluster(gpus=0, gpu_resource="nvidia.com/gpu", entrypoints=None, default_entrypoint=None,
    token="fake-token", node_name="fake-node", node_labels=None, max_grace_seconds=5.0,
    restart_backoff=0.2, tick=0.05)``

    - ``gpus`` / ``gpu_resource``: the one node's capacity of that extended resource (any other
      extended resource has capacity 0); CPU and memory are unlimited.
    - ``entrypoints``: image -> argv used when a container has no ``command``;
      ``default_entrypoint`` for images not in it. Without either, ``args`` alone is the argv.
    - ``token``: the bearer token clients must send (None: no authentication).
    - ``node_labels``: when a dict, a pod's ``nodeSelector`` must match it; when None, nodeSelector,
      affinity and tolerations are ignored.
    - ``max_grace_seconds``: cap on ``terminationGracePeriodSeconds`` between SIGTERM and SIGKILL.
    - ``restart_backoff``: first CrashLoopBackOff delay for restartPolicy Always/OnFailure
      containers (doubling per restart, capped at 10 s; a real kubelet starts at 10 s).
    - ``tick``: how often the controllers poll (they also wake on every change).
    - ``kueue_webhook``: suspend Jobs that carry a Kueue queue label when they are created.
    - ``sandbox``: run each container under its pod's securityContext with bubblewrap
      (tests/kube/sandbox.py); None: when this machine can (``sandboxed`` says whether it does,
      ``sandbox_unavailable`` why not), True: required, False: plain processes with mapped paths.
    """

    def __init__(self, gpus: int = 0, gpu_resource: str = "nvidia.com/gpu",
                 entrypoints: dict[str, list[str]] | None = None, default_entrypoint: list[str] | None = None,
                 token: str | None = "fake-token", node_name: str = "fake-node",
                 node_labels: dict[str, str] | None = None, max_grace_seconds: float = 5.0,
                 restart_backoff: float = 0.2, tick: float = 0.05, kueue_webhook: bool = False,
                 sandbox: bool | None = None) -> None:
        self.gpus = gpus
        self.gpu_resource = gpu_resource
        self.entrypoints = dict(entrypoints or {})
        self.default_entrypoint = list(default_entrypoint) if default_entrypoint else None
        self.token = token
        self.node_name = node_name
        self.node_labels = node_labels
        self.max_grace_seconds = max_grace_seconds
        self.restart_backoff = restart_backoff
        self.tick = tick
        why_not = sandbox_module.unavailable() if sandbox is not False else "turned off"
        if sandbox and why_not:
            raise RuntimeError(f"FakeCluster(sandbox=True): {why_not}")
        self.sandboxed = why_not is None
        self.sandbox_unavailable = why_not
        self.shared: list[str] = []
        self.service_account_tokens: dict[str, tuple[str, str]] = {}  # token -> (namespace, name)
        self.store = Store()
        self.store.kueue_webhook = kueue_webhook
        for ns in ("default", "kube-system", "kube-public"):
            self.store.create(NAMESPACES, None, {"metadata": {"name": ns}})
        self.request_log: collections.deque[str] = collections.deque(maxlen=10_000)  # access log lines
        self.errors: list[str] = []  # tracebacks of bugs in this fake (answered 500); tests may assert it is empty
        self.traffic: collections.Counter[str] = collections.Counter()  # requests by verb, bytes of bodies sent
        self._traffic_lock = threading.Lock()
        self._accounts_lock = threading.Lock()  # ServiceAccount tokens and their kubeconfigs
        self.root: str | None = None
        self.port = 0
        self._server: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._wake = threading.Event()
        self._sim: Any = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeCluster":
        if self._server is not None:
            return self
        self.root = tempfile.mkdtemp(prefix="fakekube-")
        self._server = _HTTPServer(self)
        self.port = self._server.server_address[1]
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                             name="fakekube-http", daemon=True)
        t.start()
        self._threads.append(t)
        self._start_sim()
        atexit.register(self.stop)
        return self

    def _start_sim(self) -> None:
        self._sim = _Simulator(self)
        self._sim.start()

    def _stop_sim(self) -> None:
        if self._sim is not None:
            self._sim.stop()

    def stop(self) -> None:
        """Stop serving, kill every pod process (SIGKILL) and remove the temporary root."""
        if self._server is None:
            return
        atexit.unregister(self.stop)
        self._stopping = True
        self._wake.set()
        with self.store.lock:
            self.store.closed = True
            self.store.cond.notify_all()
        self._stop_sim()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._server = None
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "FakeCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- traffic --------------------------------------------------------------------------------

    def _count_request(self, method: str, path: str) -> None:
        query = urlsplit(path).query
        verb = "watch" if "watch=true" in query or "/watch/" in path else method.lower()
        with self._traffic_lock:
            self.traffic["requests"] += 1
            self.traffic[verb] += 1

    def _count_bytes(self, n: int) -> None:
        with self._traffic_lock:
            self.traffic["bytes"] += n

    def reset_traffic(self) -> collections.Counter[str]:
        """The traffic counted since the last reset (requests, per verb, and response body bytes)."""
        with self._traffic_lock:
            seen, self.traffic = self.traffic, collections.Counter()
        return seen

    def share(self, path: str | os.PathLike) -> str:
        """Make ``path`` (created if missing) a node directory every pod sees, writable, at the same
        path: a shared filesystem, as a single-node cluster's hostPath would give. Returns it."""
        path = os.path.realpath(path)
        os.makedirs(path, exist_ok=True)
        if path not in self.shared:
            self.shared.append(path)
        return path

    # -- clients --------------------------------------------------------------------------------

    def service_account_kubeconfig(self, namespace: str, name: str) -> str:
        """A kubeconfig holding the ServiceAccount ``namespace/name``'s own token (what a pod gets):
        its requests are authorized by RBAC, the Roles bound to it."""
        assert self.root
        path = os.path.join(self.root, "serviceaccounts", f"{namespace}.{name}.kubeconfig")
        with self._accounts_lock:
            if not os.path.exists(path):
                token = f"sa-{uuid.uuid4().hex}"
                self.service_account_tokens[token] = (namespace, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self.kubeconfig(path, namespace, token=token)
        return path

    def kubeconfig(self, path: str | os.PathLike, namespace: str = "default", token: str | None = None) -> str:
        """Write a kubeconfig for this server (context ``fake``) and return its path."""
        token = token or self.token
        user: dict = {"token": token} if token else {}
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": user}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path = os.fspath(path)
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
        return path

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured for this server."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        if self.token:
            cfg.api_key = {"BearerToken": f"Bearer {self.token}"}
        return client.ApiClient(cfg)

    # -- test hooks -----------------------------------------------------------------------------

    def pods(self, namespace: str = "default", label_selector: str | None = None) -> list[dict]:
        """Pods in a namespace (oldest first) as dicts, optionally filtered by a label selector."""
        match = parse_label_selector(label_selector or "")
        return [_clone(p) for p in self.store.all(PODS, namespace) if match(p["metadata"].get("labels") or {})]

    def jobs(self, namespace: str = "default", label_selector: str | None = None) -> list[dict]:
        match = parse_label_selector(label_selector or "")
        return [_clone(j) for j in self.store.all(JOBS, namespace) if match(j["metadata"].get("labels") or {})]

    def get(self, plural: str, name: str, namespace: str = "default") -> dict | None:
        """One stored object as a dict (``plural``: "jobs", "pods", ...), or None."""
        try:
            return self.store.get(BY_PLURAL[plural], namespace, name)
        except ApiError:
            return None

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll ``predicate`` until it returns something truthy (returned); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)

    def compact(self) -> None:
        """Forget the event history: watches from an older resourceVersion get 410 Expired."""
        with self.store.lock:
            self.store.compacted_rv = self.store.rv
            self.store.events.clear()

    def evict(self, pod_name: str, namespace: str = "default", wait: bool = True) -> None:
        """Evict a pod as the Eviction API or a preemption would: condition DisruptionTarget=True
        (reason EvictionByEvictionAPI), SIGTERM (SIGKILL after the grace period), phase Failed.
        With ``wait``, return once the pod is Failed."""
        self._evict(namespace, pod_name, wait)

    def set_gpus(self, n: int) -> None:
        """Change the node's GPU capacity; Pending pods are scheduled again at once."""
        with self.store.lock:
            self.gpus = n
        self._wake.set()

    def free_gpus(self) -> int:
        with self.store.lock:
            return self.gpus - self._sim.allocated_gpus()

    def pid(self, pod_name: str, namespace: str = "default", container: str | None = None) -> int | None:
        """The process id of a pod's (first) container while it runs, else None."""
        return self._sim.pid(namespace, pod_name, container)

    def _serve_log(self, handler: _Handler, ns: str, name: str, q: dict[str, str]) -> None:
        self._sim.serve_log(handler, ns, name, q)

    def _evict(self, ns: str, name: str, wait: bool = True) -> None:
        self._sim.evict(ns, name, wait)
