"""The simulated Job controller."""

from __future__ import annotations

import time

from .objects import _clone, now_rfc3339, parse_rfc3339
from .resources import JOBS, PODS, ApiError
from .state import TERMINAL, _JobState, _controller_uid, _has_condition, _set_condition
from .store import Store


class _JobController:
    """The simulator's Job controller: creates a Job's pods, counts their outcomes under the Job's
    podFailurePolicy and backoffLimit, and writes the Job's status and conditions. A base of
    ``_Simulator``, which holds the state it works on (``jobs``)."""

    store: Store
    jobs: dict[str, _JobState]
    def _delete_pod(self, pod: dict, job_state: _JobState) -> None:
        job_state.controller_deleted.add(pod["metadata"]["uid"])
        self.store._delete(PODS, pod, "Background")

    @staticmethod
    def _failure_action(job: dict, pod: dict) -> tuple[str, str | None]:
        """(action, FailJob message) of the first podFailurePolicy rule matching a Failed pod."""
        rules = ((job["spec"].get("podFailurePolicy") or {}).get("rules")) or []
        meta = pod["metadata"]
        statuses = (pod["status"].get("initContainerStatuses") or []) + (pod["status"].get("containerStatuses") or [])
        for i, rule in enumerate(rules):
            codes = rule.get("onExitCodes")
            if codes is not None:
                for cs in statuses:
                    if codes.get("containerName") and cs.get("name") != codes["containerName"]:
                        continue
                    term = (cs.get("state") or {}).get("terminated")
                    if not term or term.get("exitCode", 0) == 0:
                        continue
                    code = term["exitCode"]
                    if (code in codes.get("values", [])) == (codes.get("operator") == "In"):
                        return rule["action"], (f"Container {cs['name']} for pod {meta['namespace']}/{meta['name']} "
                                                f"failed with exit code {code} matching FailJob rule at index {i}")
            for want in rule.get("onPodConditions") or []:
                for c in pod["status"].get("conditions") or []:
                    if c.get("type") == want.get("type") and c.get("status") == want.get("status", "True"):
                        return rule["action"], (f"Pod {meta['namespace']}/{meta['name']} has condition "
                                                f"{want.get('type')} matching FailJob rule at index {i}")
        return "Count", None

    def _sync_jobs(self) -> None:
        now = time.time()
        for job in self.store.all(JOBS):
            meta, spec = job["metadata"], job["spec"]
            ns, uid = meta["namespace"], meta["uid"]
            js = self.jobs.setdefault(uid, _JobState(set(), set(), []))
            finished = _has_condition(job, "Complete") or _has_condition(job, "Failed")
            if finished:
                ttl = spec.get("ttlSecondsAfterFinished")
                if ttl is not None:
                    done = [c.get("lastTransitionTime") for c in job["status"].get("conditions") or []
                            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"]
                    if done and parse_rfc3339(done[0]) + ttl <= now:
                        self.store._delete(JOBS, job, "Background")
                continue
            if meta.get("deletionTimestamp"):
                continue  # being deleted (Foreground): its pods are terminating, none are created
            pods = [p for p in self.store.all(PODS, ns) if _controller_uid(p) == uid]
            active = [p for p in pods if p["status"].get("phase") not in TERMINAL]
            status = _clone(job.get("status") or {})
            conds = status.setdefault("conditions", [])
            if spec.get("suspend"):
                for p in active:
                    self._delete_pod(p, js)
                active = []
                if not _has_condition(job, "Suspended"):
                    _set_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended")
                    self._event(job, "Normal", "Suspended", "Job suspended", "job-controller")
            else:
                if _has_condition(job, "Suspended"):
                    _set_condition(conds, "Suspended", "False", "JobResumed", "Job resumed")
                    status["startTime"] = now_rfc3339()
                    self._event(job, "Normal", "Resumed", "Job resumed", "job-controller")
                status.setdefault("startTime", now_rfc3339())
                for p in [p for p in pods if p["status"].get("phase") in TERMINAL] + js.tombstones:
                    puid = p["metadata"]["uid"]
                    if puid in js.counted:
                        continue
                    js.counted.add(puid)
                    if p["status"]["phase"] == "Succeeded":
                        js.succeeded += 1
                        continue
                    action, message = self._failure_action(job, p)
                    if action == "Ignore":
                        continue
                    js.failed += 1
                    if action == "FailJob" and js.failure is None:
                        js.failure = ("PodFailurePolicy", message or "")
                js.tombstones.clear()
                restarts = sum(cs.get("restartCount", 0) for p in active
                               for cs in p["status"].get("containerStatuses") or [])
                if js.failure is None and js.failed + restarts > spec.get("backoffLimit", 6):
                    js.failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
                deadline = spec.get("activeDeadlineSeconds")
                if js.failure is None and deadline and now - parse_rfc3339(status["startTime"]) >= deadline:
                    js.failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
                completions = spec.get("completions", 1)
                if js.failure is not None:
                    for p in active:
                        self._delete_pod(p, js)
                    active = []
                    _set_condition(conds, "FailureTarget", "True", *js.failure)
                    _set_condition(conds, "Failed", "True", *js.failure)
                    self._event(job, "Warning", js.failure[0], js.failure[1], "job-controller")
                elif js.succeeded >= completions:
                    for p in active:
                        self._delete_pod(p, js)
                    active = []
                    _set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods")
                    _set_condition(conds, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")
                    status["completionTime"] = now_rfc3339()
                    self._event(job, "Normal", "Completed", "Job completed", "job-controller")
                else:
                    want = min(spec.get("parallelism", 1), completions - js.succeeded) - len(active)
                    if want > 0 and now - js.last_create_attempt >= 1.0:
                        for _ in range(want):
                            pod = self._create_pod(job, js)
                            if pod is None:
                                js.last_create_attempt = now
                                break
                            active.append(pod)
            if not conds:
                del status["conditions"]
            for key, value in (("active", len(active)), ("succeeded", js.succeeded), ("failed", js.failed)):
                if value:
                    status[key] = value
                else:
                    status.pop(key, None)
            status["ready"] = sum(1 for p in active if _has_condition(p, "Ready"))
            status["terminating"] = 0
            status["uncountedTerminatedPods"] = {}

            def write(j: dict, status: dict = status) -> None:
                j["status"] = status

            self.store.mutate(JOBS, ns, meta["name"], write)

    def _create_pod(self, job: dict, js: _JobState) -> dict | None:
        meta = job["metadata"]
        template = _clone(job["spec"]["template"])
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations["batch.kubernetes.io/job-tracking"] = ""
        body = {"apiVersion": "v1", "kind": "Pod", "spec": template["spec"], "metadata": {
            "generateName": f"{meta['name']}-", "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
                                 "controller": True, "blockOwnerDeletion": True}]}}
        try:
            pod = self.store.create(PODS, meta["namespace"], body)
        except ApiError as exc:
            self._event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}", "job-controller")
            return None
        self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "job-controller")
        return pod
