"""The simulated kubelet: runs each bound pod's containers as local processes."""

from __future__ import annotations

import base64
import os
import re
import shutil
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

from tests.kube import sandbox as sandbox_module

from .objects import now_rfc3339
from .resources import CONFIGMAPS, PODS, SECRETS, SERVICEACCOUNTS, Resource, _bad_request
from .state import TERMINAL, _Blocked, _ContainerRun, _PodRun, _exit_code, _set_condition
from .store import Store
from .validation import _ENV_NAME_RE

if TYPE_CHECKING:
    from .cluster import FakeCluster
    from .server import _Handler


def _image_paths() -> list[str]:
    """The directories a container's command runs from here: the interpreter's prefixes, every
    import path and this checkout (the stand-in for what an image holds)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    candidates = [sys.prefix, sys.base_prefix, here, *sys.path]
    return sorted({os.path.realpath(p) for p in candidates if p and os.path.isdir(p)})


class _Kubelet:
    """The simulator's kubelet: materialises a bound pod's volumes and environment, runs its containers
    (under bubblewrap where it can), restarts them, writes the pod's status and serves its logs. A
    base of ``_Simulator``, which holds the state it works on (``runs``)."""

    c: FakeCluster
    store: Store
    runs: dict[str, _PodRun]
    def _sync_pods(self) -> None:
        for uid, run in list(self.runs.items()):
            pod = self.store.objects["pods"].get((run.ns, run.name))
            if pod is None or pod["metadata"]["uid"] != uid or run.terminal:
                continue
            if not run.started:
                self._try_start(pod, run)
            else:
                self._poll(pod, run)
            self._write_status(pod, run)

    def _lookup(self, res: Resource, ns: str, name: str) -> dict | None:
        return self.store.objects[res.plural].get((ns, name))

    def _volumes(self, pod: dict, run: _PodRun) -> dict[str, str]:
        """Materialise the pod's volumes; volume name -> directory. Raises _Blocked."""
        ns = run.ns
        out = {}
        for v in pod["spec"].get("volumes") or []:
            path = os.path.join(run.dir, "volumes", v["name"])
            out[v["name"]] = path
            if os.path.isdir(path):
                continue
            files: dict[str, bytes] = {}
            mode = 0o644
            items = None
            if "secret" in v or "configMap" in v:
                kind, src = ("secret", v["secret"]) if "secret" in v else ("configMap", v["configMap"])
                name = src.get("secretName") if kind == "secret" else src.get("name")
                obj = self._lookup(SECRETS if kind == "secret" else CONFIGMAPS, ns, name)
                mode = src.get("defaultMode", 0o644)
                items = src.get("items")
                if obj is None:
                    if src.get("optional"):
                        os.makedirs(path)
                        continue
                    what = "secret" if kind == "secret" else "configmap"
                    raise _Blocked("ContainerCreating", f'MountVolume.SetUp failed for volume "{v["name"]}" : {what} '
                                   f'"{name}" not found', "FailedMount")
                if kind == "secret":
                    files = {k: base64.b64decode(d) for k, d in (obj.get("data") or {}).items()}
                else:
                    files = {k: d.encode() for k, d in (obj.get("data") or {}).items()}
                    files.update({k: base64.b64decode(d) for k, d in (obj.get("binaryData") or {}).items()})
            tmp = path + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            selected = [(i["key"], i.get("path", i["key"]), i.get("mode", mode)) for i in items] if items else \
                [(k, k, mode) for k in files]
            for key, rel, fmode in selected:
                if key not in files:
                    detail = (f"references non-existent secret key: {key}" if "secret" in v
                              else f"configmap references non-existent config key: {key}")
                    raise _Blocked("ContainerCreating", f'MountVolume.SetUp failed for volume "{v["name"]}" : '
                                   f"{detail}", "FailedMount")
                target = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(files[key])
                os.chmod(target, fmode)
            os.rename(tmp, path)
        return out

    @staticmethod
    def _expand(value: str, env: dict[str, str]) -> str:
        """Kubernetes $(VAR) expansion: defined variables are substituted, $$ escapes, others stay."""
        return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                      lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)

    def _field_ref(self, pod: dict, run: _PodRun, path: str) -> str:
        meta = pod["metadata"]
        m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
        if m:
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        return {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
                "spec.nodeName": self.c.node_name, "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
                "status.podIP": run.ip, "status.hostIP": "127.0.0.1", "status.podIPs": run.ip,
                "status.hostIPs": "127.0.0.1"}.get(path, "")

    def _container_env(self, pod: dict, run: _PodRun, c: dict) -> dict[str, str]:
        """The container's own variables (envFrom, then env, with $(VAR) expansion). Raises _Blocked."""
        ns = run.ns
        defined: dict[str, str] = {}

        def source(kind: str, name: str, optional: bool) -> dict[str, str] | None:
            obj = self._lookup(SECRETS if kind == "Secret" else CONFIGMAPS, ns, name)
            if obj is None:
                if optional:
                    return None
                raise _Blocked("CreateContainerConfigError", f'{kind.lower()} "{name}" not found', "Failed")
            if kind == "Secret":
                return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
            return dict(obj.get("data") or {})

        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in src:
                    data = source(kind, src[key].get("name", ""), bool(src[key].get("optional")))
                    for k, v in (data or {}).items():
                        if _ENV_NAME_RE.match(prefix + k):
                            defined[prefix + k] = v
        for e in c.get("env") or []:
            name = e["name"]
            if "valueFrom" not in e:
                defined[name] = self._expand(e.get("value", ""), defined)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                defined[name] = self._field_ref(pod, run, vf["fieldRef"].get("fieldPath", ""))
            elif "resourceFieldRef" in vf:
                r = (c.get("resources") or {})
                res_name = vf["resourceFieldRef"].get("resource", "")
                section, _, key = res_name.partition(".")
                defined[name] = str((r.get(section) or {}).get(key, "0"))
            else:
                kind, key = ("Secret", "secretKeyRef") if "secretKeyRef" in vf else ("ConfigMap", "configMapKeyRef")
                ref = vf[key]
                data = source(kind, ref.get("name", ""), bool(ref.get("optional")))
                if data is None:
                    continue
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        continue
                    raise _Blocked("CreateContainerConfigError", f"couldn't find key {ref.get('key')} in {kind} "
                                   f"{ns}/{ref.get('name')}", "Failed")
                defined[name] = data[ref["key"]]
        return defined

    @staticmethod
    def _mount_source(m: dict, volumes: dict[str, str]) -> str:
        """The directory a volumeMount shows; a missing ``subPath`` is created, as a kubelet does."""
        host = volumes[m["name"]]
        if m.get("subPath"):
            host = os.path.join(host, m["subPath"])
            os.makedirs(host, exist_ok=True)
        return host

    @classmethod
    def _mapper(cls, c: dict, volumes: dict[str, str]) -> Callable[[str], str]:
        """Rewrite container paths under a volumeMount's mountPath to the volume's directory."""
        mounts = []
        for m in c.get("volumeMounts") or []:
            mounts.append((m["mountPath"].rstrip("/") or "/", cls._mount_source(m, volumes)))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)

        def map_path(value: str) -> str:
            for mount, host in mounts:
                if value == mount:
                    return host
                prefix = mount if mount.endswith("/") else mount + "/"
                if value.startswith(prefix):
                    return os.path.join(host, value[len(prefix):])
            return value

        return map_path

    def _pod_kubeconfig(self, pod: dict) -> str:
        """The in-cluster credentials of the pod: its ServiceAccount's token."""
        return self.c.service_account_kubeconfig(pod["metadata"]["namespace"],
                                                 pod["spec"].get("serviceAccountName") or "default")

    def _try_start(self, pod: dict, run: _PodRun) -> None:
        if run.start_time is None:
            run.start_time, run.start_ts = now_rfc3339(), time.time()
        ns = run.ns
        try:
            volumes = self._volumes(pod, run)
            plans = []
            for c in pod["spec"]["containers"]:
                defined = self._container_env(pod, run, c)
                box = self._sandbox(pod, run, c, volumes) if self.c.sandboxed else None
                map_path = self._mapper(c, volumes) if box is None else (lambda v: v)
                defined = {k: map_path(v) for k, v in defined.items()}
                env = dict(os.environ)
                env["HOSTNAME"] = run.name
                automount = pod["spec"].get("automountServiceAccountToken")
                if automount is None:
                    sa = self._lookup(SERVICEACCOUNTS, ns, pod["spec"].get("serviceAccountName") or "default")
                    automount = (sa or {}).get("automountServiceAccountToken", True)
                if automount is False:
                    env.pop("KUBECONFIG", None)
                else:
                    env["KUBECONFIG"] = self._pod_kubeconfig(pod)
                env.update(defined)
                if c.get("command"):
                    base = [map_path(self._expand(a, defined)) for a in c["command"]]
                else:
                    base = list(self.c.entrypoints.get(c.get("image", ""), self.c.default_entrypoint or []))
                argv = base + [map_path(self._expand(a, defined)) for a in c.get("args") or []]
                if box is not None:
                    cwd = box.pop("cwd")
                else:
                    cwd = map_path(c["workingDir"]) if c.get("workingDir") else None
                    if cwd is None or cwd == c.get("workingDir"):
                        cwd = os.path.join(run.dir, "work", c["name"])
                    os.makedirs(cwd, exist_ok=True)
                plans.append((c, argv, env, cwd, box))
        except _Blocked as b:
            for cr in run.containers.values():
                cr.waiting = (b.reason, b.message if b.reason != "ContainerCreating" else None)
            if run.blocked_message != b.message:
                run.blocked_message = b.message
                self._event(pod, "Warning", b.event_reason, b.message, "kubelet")
            return
        run.started = True
        for c, argv, env, cwd, box in plans:
            cr = run.containers[c["name"]]
            cr.argv, cr.env, cr.cwd, cr.sandbox = argv, env, cwd, box
            self._spawn(pod, run, cr)

    def _sandbox(self, pod: dict, run: _PodRun, c: dict, volumes: dict[str, str]) -> dict:
        """How tests/kube/sandbox.py runs this container (bwrap_argv's arguments, and ``cwd``).
        Raises _Blocked for what a kubelet refuses."""
        try:
            security = sandbox_module.security_of(pod, c, image_uid=os.getuid())
        except sandbox_module.Refused as exc:
            raise _Blocked("CreateContainerConfigError", str(exc), "Failed") from None
        kinds = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts = []
        for m in c.get("volumeMounts") or []:
            volume = kinds[m["name"]]
            writable = not m.get("readOnly") and "secret" not in volume and "configMap" not in volume
            mounts.append(sandbox_module.Mount(m["mountPath"], self._mount_source(m, volumes), writable))
        mounts += [sandbox_module.Mount(path, path, True) for path in self.c.shared]
        if c.get("workingDir"):
            cwd = c["workingDir"]
        elif security.read_only_root:
            cwd = "/"
        else:
            cwd = os.path.join(run.dir, "work", c["name"])
            os.makedirs(cwd, exist_ok=True)
            mounts.append(sandbox_module.Mount(cwd, cwd, True))
        if not security.read_only_root and not any(m.path.rstrip("/") == "/tmp" for m in mounts):
            tmp = os.path.join(run.dir, "tmp", c["name"])
            os.makedirs(tmp, exist_ok=True)
            mounts.append(sandbox_module.Mount("/tmp", tmp, True))
        kubeconfig = self._pod_kubeconfig(pod)
        mounts.append(sandbox_module.Mount(kubeconfig, kubeconfig, False))
        # The "image" is this machine's Python environment and checkout. Where a checkout lies under
        # a path the pod mounts a volume at (a clone under /tmp, where the pod's scratch goes), it
        # stays visible read-only at its own path, as an image's files would be.
        for path in _image_paths():
            if any(sandbox_module._under(path, m.path) and path != m.path.rstrip("/") for m in mounts):
                mounts.append(sandbox_module.Mount(path, path, False))
        assert self.c.root
        return {"security": security, "mounts": mounts, "hidden": [self.c.root], "cwd": cwd}

    def _spawn(self, pod: dict, run: _PodRun, cr: _ContainerRun) -> None:
        log_dir = os.path.join(run.dir, "logs")
        os.makedirs(log_dir, exist_ok=True)
        log_path = os.path.join(log_dir, f"{cr.name}.{cr.restarts}.log")
        assert cr.logs is not None
        cr.logs.append(log_path)
        cr.container_id = uuid.uuid4().hex + uuid.uuid4().hex
        cr.started_at, cr.finished_at, cr.exit_code, cr.reason, cr.message = now_rfc3339(), None, None, None, None
        with open(log_path, "ab") as log:
            try:
                if not cr.argv:
                    raise OSError(0, "no command specified")
                assert cr.env is not None and cr.cwd is not None
                cr.proc = sandbox_module.start(cr.argv, env=cr.env, cwd=cr.cwd, log=log.fileno(), sandbox=cr.sandbox)
            except OSError as exc:
                cr.proc = None
                cr.exit_code, cr.reason, cr.finished_at = 128, "StartError", now_rfc3339()
                cr.message = ("failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                              f'runc create failed: unable to start container process: exec: "{(cr.argv or [""])[0]}": '
                              f"{exc.strerror or exc}")
                self._event(pod, "Warning", "Failed", f"Error: {cr.message}", "kubelet")
                return
        self._event(pod, "Normal", "Started", f"Started container {cr.name}", "kubelet")

    def _poll(self, pod: dict, run: _PodRun) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        for cr in run.containers.values():
            if cr.proc is not None and cr.exit_code is None:
                rc = cr.proc.poll()
                if rc is None:
                    continue
                cr.exit_code, cr.finished_at = _exit_code(rc), now_rfc3339()
                cr.reason = "Completed" if cr.exit_code == 0 else "Error"
            if cr.exit_code is None or run.evicted or run.deadline_exceeded:
                continue
            if policy == "Always" or (policy == "OnFailure" and cr.exit_code != 0):
                if cr.restart_at is None:
                    cr.last_state = {"terminated": self._terminated(cr)}
                    cr.backoff = min(self.c.restart_backoff * 2 ** cr.restarts, 10.0)
                    cr.restart_at = time.monotonic() + cr.backoff
                elif time.monotonic() >= cr.restart_at:
                    cr.restart_at = None
                    cr.restarts += 1
                    self._spawn(pod, run, cr)
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline and not run.deadline_exceeded and time.time() - run.start_ts >= deadline:
            run.deadline_exceeded = True
            self._kill(run, pod)
            self._event(pod, "Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified "
                        "deadline", "kubelet")
        if all(cr.exit_code is not None and cr.restart_at is None for cr in run.containers.values()):
            run.terminal = True

    def _terminated(self, cr: _ContainerRun) -> dict:
        t = {"exitCode": cr.exit_code, "reason": cr.reason, "startedAt": cr.started_at, "finishedAt": cr.finished_at,
             "containerID": f"containerd://{cr.container_id}"}
        if cr.message:
            t["message"] = cr.message
        return t

    def _write_status(self, pod: dict, run: _PodRun) -> None:
        statuses = []
        for c in pod["spec"]["containers"]:
            cr = run.containers[c["name"]]
            image = c.get("image", "")
            cs: dict[str, Any] = {"name": cr.name, "image": image,
                                  "imageID": f"{image.split(':')[0]}@sha256:{uuid.uuid5(uuid.NAMESPACE_URL, image).hex * 2}",
                                  "ready": False, "started": False, "restartCount": cr.restarts,
                                  "lastState": cr.last_state or {}}
            if not run.started:
                waiting = {"reason": cr.waiting[0]}
                if cr.waiting[1]:
                    waiting["message"] = cr.waiting[1]
                cs["state"] = {"waiting": waiting}
            else:
                cs["containerID"] = f"containerd://{cr.container_id}"
                if cr.restart_at is not None:
                    cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                        f"back-off {cr.backoff:g}s restarting failed container={cr.name} "
                        f"pod={run.name}_{run.ns}({run.uid})")}}
                elif cr.exit_code is None:
                    cs["state"] = {"running": {"startedAt": cr.started_at}}
                    cs["ready"] = cs["started"] = True
                else:
                    cs["state"] = {"terminated": self._terminated(cr)}
            statuses.append(cs)
        if not run.started:
            phase = "Pending"
        elif not run.terminal:
            phase = "Running"
        elif run.evicted or run.deadline_exceeded or any(cr.exit_code != 0 for cr in run.containers.values()):
            phase = "Failed"
        else:
            phase = "Succeeded"
        all_ready = phase == "Running" and all(cs["ready"] for cs in statuses)

        def update(p: dict) -> None:
            st = p["status"]
            conds = st.setdefault("conditions", [])
            _set_condition(conds, "PodReadyToStartContainers", "True" if run.started else "False")
            _set_condition(conds, "Initialized", "True")
            if all_ready:
                ready = ("True", None, None)
            elif phase in TERMINAL:
                ready = ("False", "PodCompleted" if phase == "Succeeded" else "PodFailed", None)
            else:
                names = " ".join(cs["name"] for cs in statuses if not cs["ready"])
                ready = ("False", "ContainersNotReady", f"containers with unready status: [{names}]")
            _set_condition(conds, "Ready", *ready)
            _set_condition(conds, "ContainersReady", *ready)
            _set_condition(conds, "PodScheduled", "True")
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            conds.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else -1)
            st.update(phase=phase, hostIP="127.0.0.1", hostIPs=[{"ip": "127.0.0.1"}], podIP=run.ip,
                      podIPs=[{"ip": run.ip}], startTime=run.start_time, containerStatuses=statuses)
            if run.deadline_exceeded:
                st.update(reason="DeadlineExceeded",
                          message="Pod was active on the node longer than the specified deadline")

        self.store.mutate(PODS, run.ns, run.name, update)

    def serve_log(self, handler: _Handler, ns: str, name: str, q: dict[str, str]) -> None:
        with self.store.lock:
            pod = self.store.get(PODS, ns, name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            cname = q.get("container")
            if not cname:
                if len(names) != 1:
                    raise _bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                       f"[{' '.join(names)}]")
                cname = names[0]
            elif cname not in names:
                raise _bad_request(f"container {cname} is not valid for pod {name}")
            run = self.runs.get(pod["metadata"]["uid"])
            cr = run.containers[cname] if run is not None else None
            if cr is None or not cr.logs:
                reason = cr.waiting[0] if cr is not None else "ContainerCreating"
                raise _bad_request(f'container "{cname}" in pod "{name}" is waiting to start: {reason}')
            if q.get("previous") in ("true", "1"):
                if len(cr.logs) < 2:
                    raise _bad_request(f'previous terminated container "{cname}" in pod "{name}" not found')
                path, live = cr.logs[-2], False
            else:
                path, live = cr.logs[-1], True
            proc = cr.proc
        tail = int(q["tailLines"]) if q.get("tailLines") else None
        limit = int(q["limitBytes"]) if q.get("limitBytes") else None

        def read_from(pos: int) -> bytes:
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    return f.read()
            except FileNotFoundError:
                return b""

        def running() -> bool:
            return live and proc is not None and proc.poll() is None and not self.c._stopping

        data = read_from(0)
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail > 0 else b""
        pos = os.path.getsize(path) if os.path.exists(path) else 0
        if q.get("follow") not in ("true", "1"):
            return handler.send_text(200, data[:limit] if limit is not None else data)
        handler.close_connection = True
        handler.start_chunked("text/plain")
        sent = 0
        try:
            while True:
                if limit is not None:
                    data = data[: max(0, limit - sent)]
                handler.chunk(data)
                sent += len(data)
                if limit is not None and sent >= limit:
                    break
                alive = running()
                data = read_from(pos)
                pos += len(data)
                if not data:
                    if not alive:
                        break
                    time.sleep(0.05)
            handler.end_chunked()
        except OSError:
            pass
