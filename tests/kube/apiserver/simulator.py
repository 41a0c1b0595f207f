"""The simulated cluster behind the API (one background thread; all state is guarded by the store
lock): its lifecycle, events, test hooks and the scheduler; the kubelet and the Job controller
are its parts in kubelet.py and jobs.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from typing import TYPE_CHECKING

from .jobs import _JobController
from .kubelet import _Kubelet
from .objects import _clone, now_rfc3339, parse_quantity
from .resources import EVENTS, JOBS, PODS, Resource
from .state import TERMINAL, _ContainerRun, _JobState, _PodRun, _controller_uid, _killpg, _set_condition
from .store import _owned_by

if TYPE_CHECKING:
    from .cluster import FakeCluster


_STANDARD_RESOURCES = re.compile(r"^(cpu|memory|ephemeral-storage|hugepages-.*|pods)$")


class _Simulator(_Kubelet, _JobController):
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster
        self.store = cluster.store
        self.runs: dict[str, _PodRun] = {}  # pod uid -> what the kubelet runs for it
        self.jobs: dict[str, _JobState] = {}  # job uid -> controller bookkeeping
        self.dying: list[tuple[subprocess.Popen, float]] = []  # (process, when to SIGKILL)
        self.event_names: dict[tuple[str, str, str], str] = {}
        self.next_ip = 10
        self.thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        assert self.c.root
        self.store.listeners.append(self._on_change)
        self.thread = threading.Thread(target=self._loop, name="fakekube-sim", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=10)
        with self.store.lock:
            procs = [cr.proc for run in self.runs.values() for cr in run.containers.values() if cr.proc]
            procs += [p for p, _ in self.dying]
        for p in procs:
            _killpg(p, signal.SIGKILL)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _loop(self) -> None:
        import traceback

        while not self.c._stopping:
            self.c._wake.wait(self.c.tick)
            self.c._wake.clear()
            if self.c._stopping:
                break
            try:
                with self.store.lock:
                    self._sync_jobs()
                    self._schedule()
                    self._sync_pods()
                    self._finish_deletions()
                    self._reap()
            except Exception:
                self.c.errors.append(traceback.format_exc())
                time.sleep(0.5)

    def _on_change(self, etype: str, res: Resource, obj: dict, old: dict | None) -> None:
        if res is EVENTS:
            return
        self.c._wake.set()
        if etype != "DELETED":
            return
        uid = obj["metadata"]["uid"]
        if res is JOBS:
            self.jobs.pop(uid, None)
        elif res is PODS:
            run = self.runs.pop(uid, None)
            if run is not None:
                self._kill(run, obj)
            job_state = self.jobs.get(_controller_uid(obj) or "")
            if (job_state is not None and uid not in job_state.counted and uid not in job_state.controller_deleted
                    and (obj.get("status") or {}).get("phase") not in TERMINAL):
                # a pod deleted while it ran counts as failed (the real controller tracks it with a finalizer)
                gone = _clone(obj)
                gone["status"]["phase"] = "Failed"
                for cs in gone["status"].get("containerStatuses") or []:
                    if "terminated" not in cs.get("state", {}):
                        cs["state"] = {"terminated": {"exitCode": 143, "reason": "Error"}}
                job_state.tombstones.append(gone)

    def _finish_deletions(self) -> None:
        """Graceful pod deletion (Foreground cascades): a pod marked for deletion is sent SIGTERM and goes
        once its processes have exited (SIGKILL after the grace period); an owner waiting on the
        foregroundDeletion finalizer goes once it owns nothing."""
        for pod in [p for p in self.store.all(PODS) if p["metadata"].get("deletionTimestamp")]:
            run = self.runs.get(pod["metadata"]["uid"])
            procs = [cr.proc for cr in run.containers.values() if cr.proc is not None] if run else []
            if any(p.poll() is None for p in procs):
                if run is not None and not run.terminating:
                    run.terminating = True
                    self._kill(run, pod)
                continue
            self.store._delete(PODS, pod, "Background")
        for res in (JOBS,):
            for owner in self.store.all(res):
                meta = owner["metadata"]
                if not meta.get("deletionTimestamp") or "foregroundDeletion" not in (meta.get("finalizers") or []):
                    continue
                if not any(_owned_by(p, meta["uid"]) for p in self.store.all(PODS, meta["namespace"])):
                    self.store._delete(res, owner, "Background")

    def _grace(self, pod: dict) -> float:
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return min(float(30 if grace is None else grace), self.c.max_grace_seconds)

    def _kill(self, run: _PodRun, pod: dict) -> None:
        kill_at = time.monotonic() + self._grace(pod)
        for cr in run.containers.values():
            if cr.proc is not None and cr.proc.poll() is None:
                _killpg(cr.proc, signal.SIGTERM)
                self.dying.append((cr.proc, kill_at))

    def _reap(self) -> None:
        now = time.monotonic()
        still = []
        for proc, kill_at in self.dying:
            if proc.poll() is None:
                if now >= kill_at:
                    _killpg(proc, signal.SIGKILL)
                still.append((proc, kill_at))
        self.dying = still

    def _event(self, obj: dict, etype: str, reason: str, message: str, component: str) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta["uid"], reason, message)
        now = now_rfc3339()
        name = self.event_names.get(key)
        if name is not None and self.store.mutate(
                EVENTS, ns, name, lambda e: e.update(count=e.get("count", 1) + 1, lastTimestamp=now)) is not None:
            return
        name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
        self.event_names[key] = name
        self.store.create(EVENTS, ns, {
            "metadata": {"name": name},
            "involvedObject": {"kind": obj["kind"], "namespace": ns, "name": meta["name"], "uid": meta["uid"],
                               "apiVersion": obj["apiVersion"], "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message, "type": etype, "source": {"component": component},
            "reportingComponent": component, "reportingInstance": "", "firstTimestamp": now, "lastTimestamp": now,
            "count": 1, "eventTime": None})

    # -- test hooks -----------------------------------------------------------------------------

    def allocated_gpus(self) -> int:
        return sum(run.gpus for run in self.runs.values() if not run.terminal)

    def pid(self, ns: str, name: str, container: str | None) -> int | None:
        with self.store.lock:
            for run in self.runs.values():
                if run.ns == ns and run.name == name:
                    for cr in run.containers.values():
                        if (container is None or cr.name == container) and cr.proc and cr.proc.poll() is None:
                            return getattr(cr.proc, "group", cr.proc.pid)
        return None

    def evict(self, ns: str, name: str, wait: bool) -> None:
        with self.store.lock:
            pod = self.store.get(PODS, ns, name)
            if pod["status"].get("phase") in TERMINAL:
                return
            run = self.runs.get(pod["metadata"]["uid"])

            def mark(p: dict) -> None:
                conds = p["status"].setdefault("conditions", [])
                _set_condition(conds, "DisruptionTarget", "True", "EvictionByEvictionAPI", "Eviction API: evicting")
                if run is None or not run.started:
                    p["status"]["phase"] = "Failed"

            self.store.mutate(PODS, ns, name, mark)
            if run is not None:
                run.evicted = True
                if run.started:
                    self._kill(run, pod)
                else:
                    run.terminal = True
            self._event(pod, "Normal", "Killing", "Stopping container " + pod["spec"]["containers"][0]["name"], "kubelet")
        self.c._wake.set()
        if wait:
            self.c.wait_for(lambda: (self.c.get("pods", name, ns) or {}).get("status", {}).get("phase") in (None, "Failed"),
                            timeout=self._grace(pod) + 10)

    # -- scheduler ------------------------------------------------------------------------------

    def _requests(self, pod: dict) -> dict[str, float]:
        total: dict[str, float] = {}
        for c in pod["spec"].get("containers") or []:
            r = c.get("resources") or {}
            merged = dict(r.get("limits") or {})
            merged.update(r.get("requests") or {})
            for k, q in merged.items():
                total[k] = total.get(k, 0.0) + parse_quantity(q)
        return total

    def _schedule(self) -> None:
        free = self.c.gpus - self.allocated_gpus()
        for pod in self.store.all(PODS):
            if pod["spec"].get("nodeName") or pod["status"].get("phase") != "Pending":
                continue
            requests = self._requests(pod)
            need = int(requests.get(self.c.gpu_resource, 0))
            problems = []
            selector = pod["spec"].get("nodeSelector") or {}
            if self.c.node_labels is not None and any(self.c.node_labels.get(k) != v for k, v in selector.items()):
                problems.append("1 node(s) didn't match Node's node affinity/selector")
            for r in sorted(requests):
                if r != self.c.gpu_resource and not _STANDARD_RESOURCES.match(r) and requests[r] > 0:
                    problems.append(f"1 Insufficient {r}")
            if need > free:
                problems.append(f"1 Insufficient {self.c.gpu_resource}")
            meta = pod["metadata"]
            if problems:
                message = "0/1 nodes are available: " + ", ".join(problems) + "."

                def unschedulable(p: dict, message: str = message) -> None:
                    _set_condition(p["status"].setdefault("conditions", []), "PodScheduled", "False", "Unschedulable",
                                   message)

                before = [c for c in pod["status"].get("conditions") or [] if c.get("type") == "PodScheduled"]
                self.store.mutate(PODS, meta["namespace"], meta["name"], unschedulable)
                if not before or before[0].get("message") != message:
                    self._event(pod, "Warning", "FailedScheduling", message, "default-scheduler")
                continue
            free -= need
            self._bind(pod, need)

    def _bind(self, pod: dict, gpus: int) -> None:
        meta = pod["metadata"]
        assert self.c.root
        pod_dir = os.path.join(self.c.root, "pods", f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}")
        os.makedirs(pod_dir, exist_ok=True)
        self.next_ip += 1
        containers = {c["name"]: _ContainerRun(c["name"], c.get("image", ""), logs=[])
                      for c in pod["spec"]["containers"]}
        self.runs[meta["uid"]] = _PodRun(meta["uid"], meta["namespace"], meta["name"], pod_dir, gpus,
                                         f"10.244.{self.next_ip // 250}.{self.next_ip % 250 + 2}", containers)

        def bind(p: dict) -> None:
            p["spec"]["nodeName"] = self.c.node_name
            _set_condition(p["status"].setdefault("conditions", []), "PodScheduled", "True")

        self.store.mutate(PODS, meta["namespace"], meta["name"], bind)
        self._event(pod, "Normal", "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to "
                    f"{self.c.node_name}", "default-scheduler")
