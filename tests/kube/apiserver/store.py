"""Storage: one ordered map per resource, a global resourceVersion and the event history (watches
and paginated lists read it)."""

from __future__ import annotations

import base64
import json
import random
import string
import threading
import uuid
from typing import Any, Callable

from tests.kube import admission

from .objects import _clone, _meta, now_rfc3339
from .patches import json_patch, merge_patch
from .resources import (JOBS, KUEUE_QUEUE_LABEL, NAMESPACES, PODS, RESOURCES, SECRETS, ApiError, Resource, _bad_request,
                        _check_list_options, _invalid_list_options, _parse_rv)
from .selectors import parse_field_selector, parse_label_selector
from .validation import Err, _default_pod_spec, _invalid, _prepare, _required, _type_check, _validate


def _random_suffix(n: int = 5) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in _meta(obj).get("ownerReferences") or [])


PSA_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
"""A namespace's Pod Security Admission level (privileged, baseline, restricted); without it,
privileged, as on a cluster without an admission configuration."""


class Store:
    """Objects, resourceVersions and watch events. All public methods raise ApiError."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects: dict[str, dict[tuple[str, str], dict]] = {r.plural: {} for r in RESOURCES}
        self.rv = 100
        self.events: list[tuple[int, str, str, dict, dict | None]] = []  # (rv, type, plural, object, old object)
        self.compacted_rv = 0
        self.max_events = 200_000
        self.created: dict[str, int] = {}  # uid -> resourceVersion at creation (creation order)
        # called under the lock after every change: (event type, resource, object, old object)
        self.listeners: list[Callable[[str, Resource, dict, dict | None], None]] = []
        self.closed = False
        self.kueue_webhook = False  # FakeCluster(kueue_webhook=True)

    # -- internals ------------------------------------------------------------------------------

    def _emit(self, etype: str, res: Resource, obj: dict, old: dict | None) -> None:
        self.events.append((int(obj["metadata"]["resourceVersion"]), etype, res.plural, obj, old))
        if len(self.events) > self.max_events:  # keep the newest half; older resourceVersions get 410 Expired
            drop = len(self.events) // 2
            self.compacted_rv = self.events[drop - 1][0]
            del self.events[:drop]
        for listener in self.listeners:
            listener(etype, res, obj, old)
        self.cond.notify_all()

    def _key(self, res: Resource, ns: str | None, name: str) -> tuple[str, str]:
        return ((ns or "") if res.namespaced else "", name)

    def _current(self, res: Resource, ns: str | None, name: str) -> dict:
        obj = self.objects[res.plural].get(self._key(res, ns, name))
        if obj is None:
            raise res.not_found(name)
        return obj

    def _commit(self, res: Resource, obj: dict, old: dict | None) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[res.plural][self._key(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        if old is None:
            self.created[obj["metadata"]["uid"]] = self.rv
        self._emit("ADDED" if old is None else "MODIFIED", res, obj, old)
        return _clone(obj)

    # -- verbs ----------------------------------------------------------------------------------

    def create(self, res: Resource, ns: str | None, body: Any, dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise _bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                               "the body is not a JSON object")
        obj = _clone(body)
        if obj.get("kind") not in (None, "", res.kind):
            raise _bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                               f"the kind in the body ({obj.get('kind')}) is not {res.kind}")
        meta = _meta(obj)
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        _type_check(obj, res)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation", "selfLink"):
            meta.pop(k, None)
        if res.has_status:
            obj["status"] = {}
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                base = meta["generateName"][:58]
                for _ in range(100):
                    meta["name"] = base + _random_suffix()
                    if self._key(res, ns, meta["name"]) not in self.objects[res.plural]:
                        break
            _prepare(res, obj)
            if res is JOBS and self.kueue_webhook and KUEUE_QUEUE_LABEL in (meta.get("labels") or {}):
                obj["spec"]["suspend"] = True  # as Kueue's mutating webhook does: it admits the Job later
            meta["uid"] = str(uuid.uuid4())
            errors = _validate(res, obj, None)
            if res is JOBS and not errors:
                errors = self._job_selector(obj)
            if errors:
                raise res.invalid(meta.get("name") or "", errors)
            if self._key(res, ns, meta["name"]) in self.objects[res.plural]:
                raise res.already_exists(meta["name"])
            if res is PODS:
                self._admit_pod(obj)
            meta["creationTimestamp"] = now_rfc3339()
            if isinstance(obj.get("spec"), dict):
                meta["generation"] = 1
            if dry_run:
                return _clone(obj)
            return self._commit(res, obj, None)

    def _job_selector(self, job: dict) -> list[Err]:
        meta, spec = job["metadata"], job["spec"]
        if spec.get("manualSelector"):
            if not spec.get("selector"):
                return [_required("spec.selector")]
            return []
        if spec.get("selector"):
            return [_invalid("spec.selector", spec["selector"], "`selector` will be auto-generated")]
        uid, name = meta["uid"], meta["name"]
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        template_meta = spec["template"].setdefault("metadata", {})
        labels = template_meta.setdefault("labels", {})
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name})
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
        return []

    def rules_for(self, ns: str, sa_ns: str, sa: str) -> list[dict]:
        """The rules of every Role in ``ns`` bound to the ServiceAccount ``sa_ns/sa``."""
        with self.lock:
            rules: list[dict] = []
            for (binding_ns, _), binding in self.objects["rolebindings"].items():
                if binding_ns != ns or not any(
                        s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace") == sa_ns
                        for s in binding.get("subjects") or []):
                    continue
                ref = binding.get("roleRef") or {}
                role = self.objects["roles"].get((ns, ref.get("name", ""))) if ref.get("kind") == "Role" else None
                rules += (role or {}).get("rules") or []
            return rules

    def _admit_pod(self, pod: dict) -> None:
        sa = pod["spec"].get("serviceAccountName") or "default"
        ns = pod["metadata"]["namespace"]
        namespace = self.objects["namespaces"].get(("", ns))
        level = ((namespace or {}).get("metadata", {}).get("labels") or {}).get(PSA_ENFORCE_LABEL, "privileged")
        violations = admission.pod_security_violations(pod, level)
        if violations:
            raise ApiError(403, "Forbidden", f'pods "{pod["metadata"]["name"]}" is forbidden: violates PodSecurity '
                           f'"{level}:latest": {", ".join(violations)}', {"name": pod["metadata"]["name"], "kind": "pods"})
        if sa != "default" and (ns, sa) not in self.objects["serviceaccounts"]:
            raise ApiError(403, "Forbidden", f'pods "{pod["metadata"]["name"]}" is forbidden: error looking up service '
                           f'account {ns}/{sa}: serviceaccount "{sa}" not found',
                           {"name": pod["metadata"]["name"], "kind": "pods"})

    def get(self, res: Resource, ns: str | None, name: str) -> dict:
        with self.lock:
            return _clone(self._current(res, ns, name))

    def list(self, res: Resource, ns: str | None, label_selector: str = "", field_selector: str = "",
             limit: int = 0, continue_token: str = "", resource_version: str = "",
             resource_version_match: str = "") -> tuple[list[dict], dict]:
        """A list as a real server answers it: every page of a paginated list (``limit``, then the
        ``continue`` token) shows the objects as they were at the first page's resourceVersion (an
        etcd snapshot), and a token whose resourceVersion was compacted away is 410 Expired."""
        lmatch = parse_label_selector(label_selector)
        fmatch = parse_field_selector(field_selector, res)
        _check_list_options(resource_version, resource_version_match, continue_token)
        if limit < 0:
            raise _invalid_list_options([_invalid("limit", limit, "must be greater than or equal to 0")])
        start: tuple[str, str] | None = None
        with self.lock:
            if continue_token:
                snapshot, start = self._decode_continue(continue_token)
                if snapshot < self.compacted_rv:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                                   "list result. You can start a new list without the continue parameter.")
            elif resource_version_match == "Exact":
                snapshot = _parse_rv(resource_version)
                if snapshot < self.compacted_rv:
                    raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
                if snapshot > self.rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: {snapshot}, current: {self.rv}")
            else:
                if resource_version not in ("", "0") and _parse_rv(resource_version) > self.rv:
                    raise ApiError(504, "Timeout",
                                   f"Too large resource version: {resource_version}, current: {self.rv}")
                snapshot = self.rv
            objects = self._objects_at(res, snapshot)
            items = [o for k, o in sorted(objects.items())
                     if (ns is None or not res.namespaced or k[0] == ns) and (start is None or k > start)
                     and lmatch(o["metadata"].get("labels") or {}) and fmatch(o)]
            meta: dict[str, Any] = {"resourceVersion": str(snapshot)}
            if limit and len(items) > limit:
                last = items[limit - 1]["metadata"]
                meta["continue"] = base64.b64encode(json.dumps(
                    {"v": "meta.k8s.io/v1", "rv": snapshot,
                     "start": [last.get("namespace", "") if res.namespaced else "", last["name"]]}).encode()).decode()
                if not label_selector and not field_selector:  # a real server cannot count what a selector keeps
                    meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            out = []
            for o in items:
                o = _clone(o)
                if not res.custom:  # built-in list items carry no kind/apiVersion; custom resources keep theirs
                    o.pop("kind", None)
                    o.pop("apiVersion", None)
                out.append(o)
            return out, meta

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
        try:
            decoded = json.loads(base64.b64decode(token, validate=True))
            return int(decoded["rv"]), (str(decoded["start"][0]), str(decoded["start"][1]))
        except (ValueError, KeyError, TypeError, IndexError):
            raise _bad_request("invalid continue token: continue key is not valid: incorrect encoded start "
                               "resourceVersion (version meta.k8s.io/v1)") from None

    def _objects_at(self, res: Resource, rv: int) -> dict[tuple[str, str], dict]:
        """The objects of ``res`` as they were at resourceVersion ``rv`` (the current ones undone
        event by event, newest first); call under the lock, with ``rv`` not compacted."""
        current = self.objects[res.plural]
        if rv >= self.rv:
            return current
        objects = dict(current)
        for _, etype, plural, obj, old in reversed(self.events_after(rv)):
            if plural != res.plural:
                continue
            key = self._key(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if etype == "ADDED":
                objects.pop(key, None)
            elif old is not None:
                objects[key] = old
        return objects

    def replace(self, res: Resource, ns: str | None, name: str, body: Any, subresource: str | None = None,
                dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise _bad_request("the body is not a JSON object")
        obj = _clone(body)
        meta = _meta(obj)
        if meta.get("name") and meta["name"] != name:
            raise _bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if res.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        _type_check(obj, res)
        with self.lock:
            old = self._current(res, ns, name)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise res.conflict(name)
            return self._update(res, old, obj, subresource, dry_run)

    def patch(self, res: Resource, ns: str | None, name: str, content_type: str, patch: Any,
              subresource: str | None = None, dry_run: bool = False) -> dict:
        ctype = (content_type or "").split(";")[0].strip()
        with self.lock:
            old = self._current(res, ns, name)
            if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                if not isinstance(patch, dict):
                    raise _bad_request("the body of a merge patch must be a JSON object")
                new = merge_patch(old, patch)
            elif ctype == "application/json-patch+json":
                new = json_patch(old, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/strategic-merge-patch+json")
            _type_check(new, res)
            meta = _meta(new)
            if meta.get("name") != name:
                raise _bad_request("metadata.name: the name of the object cannot be changed by a patch")
            if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise res.conflict(name)
            return self._update(res, old, new, subresource, dry_run)

    def _update(self, res: Resource, old: dict, obj: dict, subresource: str | None, dry_run: bool) -> dict:
        if subresource == "status":
            new = _clone(old)
            new["status"] = obj.get("status") or {}
        else:
            new = obj
            meta, old_meta = _meta(new), old["metadata"]
            for k in ("uid", "creationTimestamp", "generation", "namespace", "name", "deletionTimestamp"):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            if res.has_status:
                new["status"] = _clone(old.get("status") or {})
            if res is SECRETS or res is NAMESPACES:
                _prepare(res, new)
            elif res is JOBS and isinstance(new.get("spec"), dict):
                _prepare(res, new)
            elif res is PODS and isinstance(new.get("spec"), dict):
                _default_pod_spec(new["spec"])
            if isinstance(new.get("spec"), dict) and new.get("spec") != old.get("spec"):
                meta["generation"] = int(old_meta.get("generation") or 0) + 1
        errors = _validate(res, new, old)
        if errors:
            raise res.invalid(new["metadata"]["name"], errors)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old or dry_run:
            return _clone(new)
        return self._commit(res, new, old)

    def delete(self, res: Resource, ns: str | None, name: str, propagation: str | None = None,
               dry_run: bool = False, preconditions: dict | None = None) -> tuple[dict, list[str]]:
        """Delete at once. Returns (the deleted object, warnings)."""
        if propagation not in (None, "Orphan", "Background", "Foreground"):
            raise _bad_request(f'Unsupported value: "{propagation}": supported values: "Foreground", "Background", "Orphan"')
        warnings = []
        if propagation is None and res is JOBS:
            propagation = "Orphan"  # the real default for batch/v1 Jobs
            warnings.append("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
                            "to remove them or set propagationPolicy=Orphan to suppress this warning")
        with self.lock:
            obj = self._current(res, ns, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                               f"meta: {obj['metadata']['uid']}", {"name": name, "group": res.group, "kind": res.plural})
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f"Precondition failed: ResourceVersion in precondition: "
                               f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                               f"{obj['metadata']['resourceVersion']}", {"name": name, "group": res.group, "kind": res.plural})
            if dry_run:
                out = _clone(obj)
                out["metadata"]["deletionTimestamp"] = now_rfc3339()
                return out, warnings
            if obj["metadata"].get("deletionTimestamp"):
                return _clone(obj), warnings  # already being deleted (Foreground): it goes when that ends
            return self._delete(res, obj, propagation or "Background"), warnings

    def _delete_foreground(self, res: Resource, obj: dict) -> dict | None:
        """Foreground deletion of an owner: it stays, with a deletionTimestamp and the foregroundDeletion
        finalizer, while its pods terminate gracefully (each stays, marked, until its processes have
        exited: _Simulator._finish_deletions); then it goes. None when it owns nothing (it goes at once)."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or ""
        owned = [(dres, dep) for dres in RESOURCES if dres.namespaced
                 for dkey, dep in list(self.objects[dres.plural].items())
                 if dkey[0] == ns and _owned_by(dep, meta["uid"])]
        if not owned:
            return None
        marked = _clone(obj)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), "foregroundDeletion"]
        self._commit(res, marked, obj)
        for dres, dep in owned:
            if dres is PODS and not dep["metadata"].get("deletionTimestamp"):
                terminating = _clone(dep)
                terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
                self._commit(PODS, terminating, dep)
            elif dres is not PODS:
                self._delete(dres, dep, "Background")
        return _clone(marked)

    def _delete(self, res: Resource, obj: dict, propagation: str) -> dict:
        meta = obj["metadata"]
        key = self._key(res, meta.get("namespace"), meta["name"])
        if self.objects[res.plural].get(key) is not obj:
            return _clone(obj)  # already gone (cascades can meet the same object twice)
        if propagation == "Foreground" and res is not PODS:
            marked = self._delete_foreground(res, obj)
            if marked is not None:
                return marked
        del self.objects[res.plural][key]
        self.rv += 1
        gone = _clone(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        gone["metadata"].setdefault("deletionTimestamp", now_rfc3339())
        self.created.pop(meta["uid"], None)
        self._emit("DELETED", res, gone, obj)
        uid, ns = meta["uid"], meta.get("namespace")
        for dres in RESOURCES:
            for dkey, dep in list(self.objects[dres.plural].items()):
                if res is NAMESPACES and dres.namespaced and dkey[0] == meta["name"]:
                    self._delete(dres, dep, "Background")
                elif dres.namespaced and dkey[0] == (ns or "") and _owned_by(dep, uid):
                    if propagation == "Orphan":
                        new = _clone(dep)
                        refs = [r for r in new["metadata"]["ownerReferences"] if r.get("uid") != uid]
                        if refs:
                            new["metadata"]["ownerReferences"] = refs
                        else:
                            del new["metadata"]["ownerReferences"]
                        self._commit(dres, new, dep)
                    else:
                        self._delete(dres, dep, "Background")
        return gone

    def delete_collection(self, res: Resource, ns: str | None, label_selector: str = "", field_selector: str = "",
                          propagation: str | None = None, dry_run: bool = False) -> tuple[list[dict], list[str]]:
        items, _ = self.list(res, ns, label_selector, field_selector)
        out, warnings = [], []
        for item in items:
            try:
                gone, w = self.delete(res, item["metadata"].get("namespace"), item["metadata"]["name"], propagation, dry_run)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            out.append(gone)
            warnings = w
        return out, warnings

    # -- for the simulated controllers (no validation, no dry run) -------------------------------

    def mutate(self, res: Resource, ns: str | None, name: str, fn: Callable[[dict], None]) -> dict | None:
        """Apply fn to a copy of the object and store it if it changed; None if the object is gone."""
        with self.lock:
            old = self.objects[res.plural].get(self._key(res, ns, name))
            if old is None:
                return None
            new = _clone(old)
            fn(new)
            if new == old:
                return old
            self._commit(res, new, old)
            return self.objects[res.plural][self._key(res, ns, name)]

    def all(self, res: Resource, ns: str | None = None) -> list[dict]:
        """The stored objects themselves (never mutate them), oldest first."""
        with self.lock:
            objs = [o for k, o in self.objects[res.plural].items() if ns is None or k[0] == ns]
        return sorted(objs, key=lambda o: self.created.get(o["metadata"]["uid"], 0))

    def events_after(self, rv: int) -> list[tuple[int, str, str, dict, dict | None]]:
        import bisect
        i = bisect.bisect_right(self.events, rv, key=lambda e: e[0])
        return self.events[i:]
