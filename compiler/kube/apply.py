"""`xtrc apply` and `xtrc delete`: the experiment's objects on the cluster."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import yaml

from xtrc.errors import XtrcError
from xtrc.kube.backend import KubernetesBackend
from xtrc.kube.client import (EXPERIMENT_LABEL, REQUEST_TIMEOUT, SHARED_FS_ENV, STRICT, ClusterError, call,
                              is_api_error)
from xtrc.plan import Plan
from xtrc.render import (
    SPEC_HASH_ANNOTATION,
    Manifest,
    Renderer,
    network_policy_name,
    orchestrator_name,
    spec_configmap_name,
)


_CREATE = {  # kind → (API class, method suffix)
    "ConfigMap": ("CoreV1Api", "config_map"),
    "ServiceAccount": ("CoreV1Api", "service_account"),
    "Role": ("RbacAuthorizationV1Api", "role"),
    "RoleBinding": ("RbacAuthorizationV1Api", "role_binding"),
    "NetworkPolicy": ("NetworkingV1Api", "network_policy"),
    "Job": ("BatchV1Api", "job"),
}


REVISIONS_DIGEST_ENV = "XTRC_HUB_REVISIONS_DIGEST"


def spec_hash(spec_text: str, args: list[str], env: dict[str, str]) -> str:
    payload = json.dumps({"spec": spec_text, "args": args, "env": env}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def orchestrator_args(spec_path: str, namespace: str, *, store: str | None, image: str | None,
                      rerun: str | None, poll: float | None) -> list[str]:
    args = ["orchestrate", spec_path, "--namespace", namespace]
    for flag, value in (("--store", store), ("--image", image), ("--rerun", rerun)):
        if value:
            args += [flag, value]
    if poll is not None:
        args += ["--poll", f"{poll:g}"]
    return args


def orchestrator_env(plan: Plan | None = None) -> dict[str, str]:
    """Settings the in-cluster loop needs from here: the shared-filesystem switch, and a digest of
    the hub commits the plan pinned (the loop reads the commits from the store's lock; the digest
    makes an apply after `--refresh-revisions` replace a running orchestrator that planned with
    the old ones, as a changed spec does)."""
    env = {SHARED_FS_ENV: "1"} if os.environ.get(SHARED_FS_ENV) == "1" else {}
    if plan is not None and plan.revisions is not None and plan.revisions.used:
        env[REVISIONS_DIGEST_ENV] = plan.revisions.digest()
    return env


def apply_manifests(plan: Plan, renderer: Renderer, *, spec_text: str, args: list[str],
                    env: dict[str, str]) -> list[Manifest]:
    """Everything `xtrc apply` creates, in order: ConfigMap, ServiceAccount, Role, RoleBinding,
    NetworkPolicy, the orchestrator Job."""
    objects = renderer.render_orchestrator(plan, spec_text=spec_text, spec_hash=spec_hash(spec_text, args, env),
                                           args=args, env=env)
    return [*objects[:4], renderer.render_network_policy(plan), objects[4]]


@dataclass
class Applied:
    kind: str
    name: str
    action: str  # created | unchanged | replaced | restarted | deleted


def _true_conditions(obj: Any) -> dict[str, Any]:
    return {c.type: c for c in (obj.status.conditions or []) if c.status == "True"} if obj.status else {}


def _api(api: Any, kind: str) -> tuple[Any, str]:
    from kubernetes import client

    cls, suffix = _CREATE[kind]
    return getattr(client, cls)(api), suffix


def apply(plan: Plan, api: Any, manifests: list[Manifest], *, server_dry_run: bool = False,
          backend: KubernetesBackend | None = None) -> list[Applied]:
    """Create each object unless it exists (409 → unchanged). The ConfigMap and the orchestrator Job
    are replaced when the spec (or the flags passed on) changed; an orchestrator Job that ended
    with failed stages is started again after the failed stage Jobs are deleted (a retry, as a new
    `xtrc run` retries what failed)."""
    namespace = plan.experiment.compute.namespace
    dry = {"dry_run": "All"} if server_dry_run else {}
    backend = backend or KubernetesBackend(plan, api, require_remote_store=False)
    out: list[Applied] = []
    for manifest in manifests:
        body = yaml.safe_load(manifest.text)
        target, suffix = _api(api, manifest.kind)
        what = f"{manifest.kind} {namespace}/{manifest.name}"
        created = call(getattr(target, f"create_namespaced_{suffix}"), namespace, body, what=f"create {what}",
                       ok=(409,), _request_timeout=REQUEST_TIMEOUT, **dry, **STRICT)
        if not is_api_error(created):
            out.append(Applied(manifest.kind, manifest.name, "created"))
            continue
        action = "unchanged"
        if manifest.kind == "ConfigMap":
            action = _replace_config_map(target, namespace, body, what, dry)
        elif manifest.kind == "Job":
            action = _refresh_orchestrator(target, namespace, body, what, dry, backend)
        out.append(Applied(manifest.kind, manifest.name, action))
    return out


def _replace_config_map(core: Any, namespace: str, body: dict, what: str, dry: dict) -> str:
    current = call(core.read_namespaced_config_map, body["metadata"]["name"], namespace, what=f"read {what}",
                   _request_timeout=REQUEST_TIMEOUT)
    if (current.metadata.annotations or {}).get(SPEC_HASH_ANNOTATION) == body["metadata"]["annotations"][
            SPEC_HASH_ANNOTATION] and current.data == body["data"]:
        return "unchanged"
    body["metadata"]["resourceVersion"] = current.metadata.resource_version
    call(core.replace_namespaced_config_map, body["metadata"]["name"], namespace, body, what=f"replace {what}",
         _request_timeout=REQUEST_TIMEOUT, **dry, **STRICT)
    return "replaced"


def _refresh_orchestrator(batch: Any, namespace: str, body: dict, what: str, dry: dict,
                          backend: KubernetesBackend) -> str:
    name = body["metadata"]["name"]
    current = call(batch.read_namespaced_job, name, namespace, what=f"read {what}", _request_timeout=REQUEST_TIMEOUT)
    same = (current.metadata.annotations or {}).get(SPEC_HASH_ANNOTATION) == \
        body["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    conditions = _true_conditions(current)
    if same and "Failed" not in conditions:
        return "unchanged"  # running, or finished with every stage done
    if same and not dry:
        retry_failed(backend)  # it ended with failed stages (or crashed): apply again = try again
    if dry:
        return "restarted" if same else "replaced"
    call(batch.delete_namespaced_job, name, namespace, propagation_policy="Background", what=f"delete {what}",
         ok=(404,), _request_timeout=REQUEST_TIMEOUT)
    deadline = time.monotonic() + 60
    while True:
        result = call(batch.create_namespaced_job, namespace, body, what=f"create {what}", ok=(409,),
                      _request_timeout=REQUEST_TIMEOUT, **STRICT)
        if not is_api_error(result):
            return "replaced" if not same else "restarted"
        if time.monotonic() > deadline:
            raise XtrcError(f"{what} is still being deleted after 60s; run `xtrc apply` again")
        time.sleep(0.5)


def retry_failed(backend: KubernetesBackend) -> list[str]:
    """Delete the Jobs of failed stages (of this plan), so the loop creates them again; their keys."""
    failed = [key for key, status in backend.poll().items() if status.state == "failed"]
    for key in failed:
        backend.delete_job(backend.details[key].job)
    if failed:
        deadline = time.monotonic() + 60
        while set(failed) & set(k for k, s in backend.poll().items() if s.state == "failed"):
            if time.monotonic() > deadline:
                raise XtrcError("failed stage Jobs are still being deleted after 60s; try again")
            time.sleep(0.5)
    return failed


# --- `xtrc delete` ---------------------------------------------------------------------------


DELETE_TIMEOUT = 600.0
"""How long `xtrc delete` waits for Jobs to go: a pod's grace period (30 s by default) plus margin."""


def delete(plan: Plan, api: Any, *, timeout: float = DELETE_TIMEOUT) -> list[Applied]:
    """Remove the experiment's objects from the cluster (never the store): every stage Job (of any
    version of the spec) and its pods, leftover pods, the orchestrator Job, the spec's ConfigMap,
    the ServiceAccount, Role, RoleBinding and the NetworkPolicy.

    Jobs go with Foreground propagation: a Job stays until its pods have terminated. The
    orchestrator goes first and is waited for, so its loop has stopped before the stage Jobs are
    listed and no Job it creates can outlive this; then the stage Jobs, also waited for."""
    from kubernetes import client

    exp = plan.experiment.metadata.name
    ns = plan.experiment.compute.namespace
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    out: list[Applied] = []
    account = orchestrator_name(exp)
    selector = f"{EXPERIMENT_LABEL}={exp}"
    gone = call(batch.delete_namespaced_job, account, ns, propagation_policy="Foreground",
                what=f"delete Job {ns}/{account}", ok=(404,), _request_timeout=REQUEST_TIMEOUT)
    if not is_api_error(gone):
        out.append(Applied("Job", account, "deleted"))
    _wait_until_gone(batch, ns, f"metadata.name={account}", "", f"the orchestrator Job {ns}/{account} is", timeout)
    for job in call(batch.list_namespaced_job, ns, label_selector=selector, what=f"list Jobs in {ns}",
                    _request_timeout=REQUEST_TIMEOUT).items:
        gone = call(batch.delete_namespaced_job, job.metadata.name, ns, propagation_policy="Foreground",
                    what=f"delete Job {ns}/{job.metadata.name}", ok=(404,), _request_timeout=REQUEST_TIMEOUT)
        if not is_api_error(gone) and job.metadata.name != account:
            out.append(Applied("Job", job.metadata.name, "deleted"))
    _wait_until_gone(batch, ns, "", selector, f"the Jobs of experiment {exp} in {ns} are", timeout)
    # Pods a Job deletion without propagation left behind (or ones whose Job is already gone).
    for pod in call(core.list_namespaced_pod, ns, label_selector=selector, what=f"list Pods in {ns}",
                    _request_timeout=REQUEST_TIMEOUT).items:
        gone = call(core.delete_namespaced_pod, pod.metadata.name, ns, what=f"delete Pod {ns}/{pod.metadata.name}",
                    ok=(404,), _request_timeout=REQUEST_TIMEOUT)
        if not is_api_error(gone):
            out.append(Applied("Pod", pod.metadata.name, "deleted"))
    for kind, name in (("ConfigMap", spec_configmap_name(exp)), ("RoleBinding", account), ("Role", account),
                       ("ServiceAccount", account), ("NetworkPolicy", network_policy_name(exp))):
        target, suffix = _api(api, kind)
        gone = call(getattr(target, f"delete_namespaced_{suffix}"), name, ns, what=f"delete {kind} {ns}/{name}",
                    ok=(404,), _request_timeout=REQUEST_TIMEOUT)
        if not is_api_error(gone):
            out.append(Applied(kind, name, "deleted"))
    return out


def _wait_until_gone(batch: Any, namespace: str, field_selector: str, label_selector: str, what: str,
                     timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.2
    while call(batch.list_namespaced_job, namespace, field_selector=field_selector, label_selector=label_selector,
               limit=1, what=f"list Jobs in {namespace}", _request_timeout=REQUEST_TIMEOUT).items:
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} still being deleted after {timeout:.0f}s (their pods are terminating); "
                               "run `xtrc delete` again")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
