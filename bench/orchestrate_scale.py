"""The Kubernetes backend's poll at 10,000 stages: API calls, bytes, CPU and peak RSS per pass.

    python bench/orchestrate_scale.py [--seeds 15] [--running 200] [--churn 5] [--passes 5] [--poll 2]

A child process serves the API test server (tests/kube/apiserver/) holding one stage Job per
stage of a synthetic plan (bench/plan_render.py's spec: over 10,000 stages) and one pod per Job:
most Complete with a Succeeded pod (finished Jobs stay until their TTL), ``--running`` of them
running. No kubelet or Job controller runs: nothing trains. Before each steady-state pass the
child finishes ``--churn`` running stages (pod Succeeded, Job Complete), as a busy experiment
does every few seconds.

Each pass is one ``backend.poll()`` plus the loop's pure ``assess`` of every stage (the stages
whose Job completed count as done, as the store would say); a pass's CPU is this process's from
the end of one pass to the end of the next (all threads: the watch threads' decoding between
passes counts), "poll" is the CPU inside ``poll()`` alone; calls and bytes are what the server
answered. Two backends run in this one process, the new one first (so its peak
RSS is its own; the baseline's is the process's peak afterwards):

- ``watch``: xtrc's KubernetesBackend (paginated list once, then watches; O(changes) per pass).
- ``baseline``: the poll xtrc had before, copied here: every pass lists every Job and Pod of the
  experiment, unpaginated, and builds the official client's models for all of them.

The goal (issue: Kubernetes for real): a steady-state pass costs at most 50 ms of CPU and the
backend's peak RSS stays under 300 MB at 10,000 stages. Threads are pinned to one each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

GOAL_CPU_MS = 50.0
GOAL_RSS_MB = 300.0


def _pin(cpu_index: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[cpu_index % len(cpus)]})


def _plan(seeds: int) -> Any:
    from plan_render import big_spec

    from xtrc.loader import load_text
    from xtrc.plan import build

    return build(load_text(big_spec(seeds), "bench.yaml"))


# --- the server (child process) -----------------------------------------------------------------


def serve(seeds: int, running: int) -> None:
    """Fill an API test server with the plan's Jobs and pods; answer commands on stdin."""
    _pin(1)
    import yaml

    from tests.kube.apiserver import JOBS, PODS, FakeCluster
    from xtrc.render import Renderer

    class Quiet(FakeCluster):
        def _start_sim(self) -> None:  # no Job controller, scheduler or kubelet: nothing runs
            pass

    plan = _plan(seeds)
    cluster = Quiet().start()
    store = cluster.store
    renderer = Renderer()
    ns = plan.experiment.compute.namespace
    now = "2026-12-01T00:00:00Z"
    live: list[tuple[str, str]] = []  # (job, pod) of running stages
    for i, stage in enumerate(plan.stages.values()):
        job = yaml.safe_load(renderer.render_stage(plan, stage).text)
        job["metadata"]["namespace"] = ns
        created = store.create(JOBS, ns, job)
        meta = created["metadata"]
        template = created["spec"]["template"]
        pod = store.create(PODS, ns, {"metadata": {
            "name": f"{meta['name']}-abcde", "labels": dict(template["metadata"]["labels"]),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
                                 "controller": True, "blockOwnerDeletion": True}]},
            "spec": dict(template["spec"], nodeName="node-1")})
        if i < running:
            _set_running(store, ns, meta["name"], pod["metadata"]["name"], now)
            live.append((meta["name"], pod["metadata"]["name"]))
        else:
            _set_finished(store, ns, meta["name"], pod["metadata"]["name"], now)
    kubeconfig = cluster.kubeconfig(Path(tempfile.mkdtemp(prefix="orchestrate-scale-")) / "kubeconfig", ns)
    print(json.dumps({"kubeconfig": kubeconfig, "stages": len(plan.stages)}), flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "stats":
            print(json.dumps(dict(cluster.reset_traffic())), flush=True)
        elif command == "churn":
            for _ in range(min(int(rest[0]), len(live))):
                job, pod = live.pop()
                _set_finished(store, ns, job, pod, now)
            print(json.dumps({"running": len(live)}), flush=True)
        elif command == "quit":
            break
    cluster.stop()


def _set_running(store: Any, ns: str, job: str, pod: str, now: str) -> None:
    from tests.kube.apiserver import JOBS, PODS

    store.mutate(PODS, ns, pod, lambda p: p["status"].update(
        phase="Running", startTime=now, conditions=[{"type": "PodScheduled", "status": "True"},
                                                    {"type": "Ready", "status": "True"}],
        containerStatuses=[{"name": "stage", "ready": True, "restartCount": 0, "image": "x", "imageID": "x",
                            "state": {"running": {"startedAt": now}}}]))
    store.mutate(JOBS, ns, job, lambda j: j["status"].update(startTime=now, active=1, ready=1))


def _set_finished(store: Any, ns: str, job: str, pod: str, now: str) -> None:
    from tests.kube.apiserver import JOBS, PODS

    store.mutate(PODS, ns, pod, lambda p: p["status"].update(
        phase="Succeeded", startTime=now, conditions=[{"type": "PodScheduled", "status": "True"},
                                                      {"type": "Ready", "status": "False", "reason": "PodCompleted"}],
        containerStatuses=[{"name": "stage", "ready": False, "restartCount": 0, "image": "x", "imageID": "x",
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now,
                                                     "finishedAt": now}}}]))

    def complete(j: dict) -> None:
        j["status"].pop("active", None)
        j["status"].update(startTime=now, succeeded=1, ready=0, completionTime=now, conditions=[
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached"}])

    store.mutate(JOBS, ns, job, complete)


# --- the baseline: the poll xtrc had before (every pass lists everything) ------------------------


class ListEverythingBackend:
    """The poll of xtrc's KubernetesBackend before watches, copied (statuses as it computed them)."""

    def __init__(self, plan: Any, api: Any) -> None:
        from kubernetes import client

        from xtrc.kube.client import COMPONENT_LABEL, EXPERIMENT_LABEL

        self.plan = plan
        self.namespace = plan.experiment.compute.namespace
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.selector = f"{EXPERIMENT_LABEL}={plan.experiment.metadata.name},{COMPONENT_LABEL}=stage"

    def poll(self) -> dict[str, Any]:
        from xtrc.kube.client import REQUEST_TIMEOUT, STAGE_KEY_LABEL, call

        jobs = call(self.batch.list_namespaced_job, self.namespace, label_selector=self.selector,
                    what=f"list Jobs in {self.namespace}", _request_timeout=REQUEST_TIMEOUT).items
        pods = call(self.core.list_namespaced_pod, self.namespace, label_selector=self.selector,
                    what=f"list Pods in {self.namespace}", _request_timeout=REQUEST_TIMEOUT).items
        by_owner: dict[str, list[Any]] = {}
        for pod in pods:
            for ref in pod.metadata.owner_references or []:
                if ref.controller:
                    by_owner.setdefault(ref.uid, []).append(pod)
        out = {}
        for job in jobs:
            key = (job.metadata.labels or {}).get(STAGE_KEY_LABEL)
            if key not in self.plan.stages or job.metadata.deletion_timestamp is not None:
                continue
            owned = sorted(by_owner.get(job.metadata.uid, []),
                           key=lambda p: (_ts(p.metadata.creation_timestamp) or 0, p.metadata.name))
            out[key] = self._status(job, owned)
        return out

    def _status(self, job: Any, pods: list[Any]) -> Any:
        from xtrc.orchestrate import BackendStatus

        conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"} if job.status else {}
        st = job.status
        counted = ((st.failed or 0) + (st.succeeded or 0) + (st.active or 0)) if st else 0
        attempts = max(len(pods), counted, 1)
        started = _ts(st.start_time if st and st.start_time else job.metadata.creation_timestamp)
        if "Complete" in conditions:
            return BackendStatus("finished", "", attempts, started)
        failed = conditions.get("Failed") or conditions.get("FailureTarget")
        if failed is not None:
            return BackendStatus("failed", failed.reason or "Failed", attempts, started)
        newest = pods[-1] if pods else None
        phase = newest.status.phase if newest is not None and newest.status else None
        reason = "pending" if newest is None or phase == "Pending" else ""
        return BackendStatus("running", reason, attempts, started)

    def close(self) -> None:
        pass


def _ts(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


# --- the measurement ---------------------------------------------------------------------------


class Server:
    def __init__(self, seeds: int, running: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", "--seeds", str(seeds),
                                      "--running", str(running)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT)
        self.info = json.loads(self.proc.stdout.readline())

    def ask(self, line: str) -> dict:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def measure(name: str, backend: Any, plan: Any, server: Server, *, passes: int, churn: int, poll: float) -> dict:
    from xtrc.orchestrate import assess

    server.ask("stats")
    rows = []
    for i in range(passes + 1):
        if i:
            server.ask(f"churn {churn}")
            time.sleep(poll)  # the loop's wait between passes (the watch threads work meanwhile)
        cpu0 = time.process_time() if i == 0 else cpu_mark
        wall0 = time.perf_counter()
        poll0 = time.process_time()
        statuses = backend.poll()
        poll_ms = (time.process_time() - poll0) * 1000
        done = {key for key, s in statuses.items() if s.state == "finished"}  # what the store would say
        views = assess(plan, done, statuses)
        cpu_mark = time.process_time()
        traffic = server.ask("stats")
        rows.append({"cpu_ms": (cpu_mark - cpu0) * 1000, "poll_ms": poll_ms,
                     "wall_ms": (time.perf_counter() - wall0) * 1000,
                     "calls": traffic.get("requests", 0), "bytes": traffic.get("bytes", 0),
                     "finished": len(done), "running": sum(1 for v in views.values() if v.state == "running")})
    backend.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steady = rows[1:]
    out = {"name": name, "first": rows[0], "rss_mb": rss_mb, "finished": [r["finished"] for r in rows],
           **{k: sum(r[k] for r in steady) / len(steady) for k in ("cpu_ms", "poll_ms", "wall_ms", "calls", "bytes")}}
    print(f"{name:>8}: first pass {rows[0]['cpu_ms']:9.0f} ms CPU, {rows[0]['calls']:3d} calls, "
          f"{rows[0]['bytes'] / 1e6:7.1f} MB | steady pass {out['cpu_ms']:8.1f} ms CPU (poll {out['poll_ms']:.1f} ms, "
          f"{out['wall_ms']:.0f} ms wall), {out['calls']:5.1f} calls, {out['bytes'] / 1e3:9.1f} kB | "
          f"peak RSS {rss_mb:6.0f} MB | finished per pass {out['finished']}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=15, help="plan_render's spec: 15 seeds ≈ 10,000+ stages")
    parser.add_argument("--running", type=int, default=200, help="stages running at the start")
    parser.add_argument("--churn", type=int, default=5, help="stages that finish between two passes")
    parser.add_argument("--passes", type=int, default=5, help="steady-state passes per backend")
    parser.add_argument("--baseline-passes", type=int, default=2, help="steady-state passes of the baseline")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between passes (the loop's --poll)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.seeds, args.running)
        return 0
    _pin(0)
    from xtrc.kube import KubernetesBackend, api_client

    plan = _plan(args.seeds)
    print(f"{len(plan.stages)} stages, {args.running} running, {args.churn} finishing per pass, "
          f"a pass every {args.poll:g} s", flush=True)
    server = Server(args.seeds, args.running)
    try:
        os.environ["KUBECONFIG"] = server.info["kubeconfig"]
        os.environ.pop("KUBERNETES_SERVICE_HOST", None)
        api = api_client()
        new = measure("watch", KubernetesBackend(plan, api, require_remote_store=False), plan, server,
                      passes=args.passes, churn=args.churn, poll=args.poll)
        old = measure("baseline", ListEverythingBackend(plan, api), plan, server,
                      passes=args.baseline_passes, churn=args.churn, poll=args.poll)
    finally:
        server.close()
    ratio = {k: old[k] / new[k] if new[k] else float("inf") for k in ("cpu_ms", "calls", "bytes")}
    print(f"steady pass, baseline / watch: CPU {ratio['cpu_ms']:.0f}x, calls {ratio['calls']:.1f}x, "
          f"bytes {ratio['bytes']:.0f}x")
    meets = new["cpu_ms"] <= GOAL_CPU_MS and new["rss_mb"] <= GOAL_RSS_MB
    print(f"goal (steady pass <= {GOAL_CPU_MS:.0f} ms CPU, peak RSS <= {GOAL_RSS_MB:.0f} MB): "
          f"{new['cpu_ms']:.1f} ms, {new['rss_mb']:.0f} MB -> {'met' if meets else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
