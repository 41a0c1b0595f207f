"""`xtrc logs`: a stage from a key prefix or ARM/TASK, its newest pod, and that pod's log."""

from __future__ import annotations

from typing import Any, Iterator

from xtrc.errors import XtrcError, did_you_mean
from xtrc.kube.backend import KubernetesBackend
from xtrc.kube.client import REQUEST_TIMEOUT, STAGE_CONTAINER, STAGE_KEY_LABEL, call, is_api_error
from xtrc.kube.summary import timestamp
from xtrc.plan import Plan


def resolve_stage(plan: Plan, text: str, seed: int | None = None) -> str:
    """A stage key from a key prefix or ``ARM/TASK`` (TASK a target task, or ``intermediate``)."""
    if "/" in text:
        arm, task = text.split("/", 1)
        arms = [a.name for a in plan.arms]
        if arm not in arms:
            raise XtrcError(f"no arm {arm!r}; {did_you_mean(arm, arms)}arms: {', '.join(arms)}")
        if task == "intermediate":
            matches = {}
            for (a, s, _), key in plan.cells.items():
                upstream = plan.stages[key].init_from
                if a == arm and upstream:
                    matches[s] = upstream
            if not matches:
                raise XtrcError(f"arm {arm!r} has no intermediate stage")
        else:
            from xtrc import tasks

            try:
                task = tasks.resolve(task)
            except KeyError:
                pass
            matches = {s: key for (a, s, t), key in plan.cells.items() if a == arm and t == task}
            if not matches:
                targets = sorted({t for (_, _, t) in plan.cells})
                raise XtrcError(f"no target {task!r} in arm {arm!r}; {did_you_mean(task, [*targets, 'intermediate'])}"
                                f"targets: {', '.join(targets)}, or intermediate")
        if seed is not None:
            if seed not in matches:
                raise XtrcError(f"{text} has no seed {seed}; seeds: {', '.join(map(str, sorted(matches)))}")
            return matches[seed]
        keys = set(matches.values())
        if len(keys) > 1:
            listing = ", ".join(f"seed {s}: {k}" for s, k in sorted(matches.items()))
            raise XtrcError(f"{text} matches {len(keys)} stages ({listing}); pick one with --seed")
        return next(iter(keys))
    found = [key for key in plan.stages if key.startswith(text)]
    if not found:
        raise XtrcError(f"no stage of this plan has a key starting with {text!r}; give a key prefix "
                        "(see `xtrc status SPEC`) or ARM/TASK such as none+none/panx")
    if len(found) > 1:
        raise XtrcError(f"{text!r} matches {len(found)} stages ({', '.join(found[:8])}{', …' if len(found) > 8 else ''}); "
                        "give more of the key")
    return found[0]


def newest_pod(backend: KubernetesBackend, key: str) -> tuple[Any, int]:
    """The stage's newest pod and how many it has had; XtrcError when there is none."""
    selector = f"{backend.selector},{STAGE_KEY_LABEL}={key}"
    pods = call(backend.core.list_namespaced_pod, backend.namespace, label_selector=selector,
                what=f"list Pods in {backend.namespace}", _request_timeout=REQUEST_TIMEOUT).items
    if not pods:
        job = backend.job_name(key)
        exists = call(backend.batch.read_namespaced_job, job, backend.namespace, what=f"read Job {job}", ok=(404,),
                      _request_timeout=REQUEST_TIMEOUT)
        if is_api_error(exists):
            raise XtrcError(f"stage {key} has no Job in namespace {backend.namespace} (not started yet, or deleted "
                            "after it finished: ttlSecondsAfterFinished)")
        raise XtrcError(f"stage {key}: Job {job} has no pod yet")
    pods.sort(key=lambda p: (timestamp(p.metadata.creation_timestamp) or 0, p.metadata.name))
    return pods[-1], len(pods)


def pod_log(backend: KubernetesBackend, pod: str, *, follow: bool) -> Iterator[bytes]:
    """The pod's log as it comes (``follow``: until the container ends)."""
    response = call(backend.core.read_namespaced_pod_log, pod, backend.namespace, container=STAGE_CONTAINER,
                    follow=follow, _preload_content=False, what=f"read the log of pod {backend.namespace}/{pod}",
                    **({} if follow else {"_request_timeout": REQUEST_TIMEOUT}))
    try:
        yield from response.stream(64 * 1024)
    finally:
        response.release_conn()
