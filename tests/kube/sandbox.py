"""Run a container's process under its pod's securityContext, as a kubelet would, with bubblewrap.

The "image" is this machine's filesystem. What the container sees:

- the machine's root, read-only (``readOnlyRootFilesystem: true``); with a writable root the
  machine's directories stay read-only too, and only a fresh ``/tmp`` and working directory are
  writable (there is no copy-on-write layer);
- its pod's volumes at their ``mountPath`` (writable unless ``readOnly``), ``subPath`` directories
  created in the volume as a kubelet creates them;
- the node directories the test cluster shares with every pod (``FakeCluster.share``), writable at
  the same path, standing in for a shared filesystem;
- a fresh ``/proc`` and ``/dev`` (with a writable ``/dev/shm`` unless a volume is mounted there);
- nothing of the test cluster's own directory (other pods' volumes), which is hidden.

It runs as ``runAsUser``/``runAsGroup`` (inside a user namespace: files this machine's user owns
look owned by that uid), with no capabilities when ``capabilities.drop`` holds ``ALL`` or the uid is
not 0, ``no_new_privs`` always set (as ``allowPrivilegeEscalation: false``), in a session of its
own. Not modelled: ``fsGroup`` and supplementary groups (one gid is mapped), seccomp and AppArmor
profiles, SELinux options, ``procMount``, ``sysctls``, privileged containers (refused).
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Refused", "Mount", "Security", "unavailable", "security_of", "bwrap_argv", "start"]

ALL_CAPABILITIES = "ALL"


class Refused(Exception):
    """What a kubelet refuses to run (the pod stays Pending with CreateContainerConfigError)."""


@dataclass(frozen=True)
class Mount:
    path: str  # inside the container
    source: str  # on this machine
    writable: bool


@dataclass(frozen=True)
class Security:
    uid: int
    gid: int
    read_only_root: bool
    drop_all_capabilities: bool
    add_capabilities: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why containers cannot be sandboxed on this machine, or None when they can."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install -y bubblewrap)"
    try:
        probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-user",
                                "--uid", "10001", "--gid", "10001", "--cap-drop", "ALL", "--", "true"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap cannot run here: {exc}"
    if probe.returncode != 0:
        return f"bubblewrap cannot create a user namespace here: {probe.stderr.strip() or probe.returncode}"
    return None


def security_of(pod: dict, container: dict, image_uid: int) -> Security:
    """The effective securityContext of one container (container fields override the pod's).
    Raises Refused for what a kubelet would not start."""
    pod_ctx = pod["spec"].get("securityContext") or {}
    ctx = container.get("securityContext") or {}

    def field(name: str) -> object:
        return ctx[name] if ctx.get(name) is not None else pod_ctx.get(name)

    meta = pod["metadata"]
    where = f'(pod: "{meta["name"]}_{meta["namespace"]}({meta["uid"]})", container: {container["name"]})'
    if ctx.get("privileged"):
        raise Refused(f"privileged containers are not run by the test cluster's kubelet {where}")
    uid = field("runAsUser")
    if field("runAsNonRoot"):
        if uid == 0:
            raise Refused(f"container's runAsUser breaks non-root policy {where}")
        if uid is None and image_uid == 0:
            raise Refused(f"container has runAsNonRoot and image will run as root {where}")
    uid = image_uid if uid is None else int(uid)  # type: ignore[call-overload]
    gid = field("runAsGroup")
    caps = ctx.get("capabilities") or {}
    drop = {str(c).upper() for c in caps.get("drop") or []}
    return Security(uid=uid, gid=uid if gid is None else int(gid),  # type: ignore[call-overload]
                    read_only_root=bool(ctx.get("readOnlyRootFilesystem")),
                    drop_all_capabilities=ALL_CAPABILITIES in drop or uid != 0,
                    add_capabilities=tuple(_cap_name(c) for c in caps.get("add") or []))


def _cap_name(cap: object) -> str:
    name = str(cap).upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _resolve(path: str) -> str:
    """``path`` with the machine's symlinks of its existing ancestors resolved (as a runtime resolves
    a mountPath inside the image)."""
    path = os.path.normpath(path)
    head, tail = path, ""
    while head != "/" and not os.path.lexists(head):
        head, name = os.path.split(head)
        tail = os.path.join(name, tail) if tail else name
    real = os.path.realpath(head)
    return os.path.join(real, tail) if tail else real


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _mirror(directory: str, targets: list[str], out: list[str]) -> None:
    """Rebuild ``directory`` in the sandbox's root: every entry bound read-only from this machine,
    except those that are, or lead to, a target (a mount point or hidden path), which are made
    as fresh directories so the mount points can be created in them."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        full = os.path.join(directory, name)
        if full in targets:
            continue  # mounted (or hidden) later
        inner = [t for t in targets if _under(t, full) and t != full]
        if os.path.islink(full):
            out += ["--symlink", os.readlink(full), full]
        elif inner and os.path.isdir(full):
            out += ["--dir", full]
            _mirror(full, inner, out)
        else:
            out += ["--ro-bind", full, full]


def bwrap_argv(argv: list[str], *, security: Security, mounts: list[Mount], hidden: list[str], cwd: str,
               info_fd: int) -> list[str]:
    """The bubblewrap command line that runs ``argv`` in the sandbox described in this module's doc."""
    bwrap = shutil.which("bwrap")
    assert bwrap, "check unavailable() first"
    mounts = [Mount(_resolve(m.path), m.source, m.writable) for m in mounts]
    mount_paths = [m.path for m in mounts]
    # A hidden path under a volume is hidden by the volume already.
    hidden = [h for h in map(_resolve, hidden) if not any(_under(h, p) for p in mount_paths)]
    special = ["/proc", "/dev"]
    top = [p for p in mount_paths if not any(_under(p, q) and p != q for q in mount_paths)]
    out = [bwrap]
    _mirror("/", sorted(set(top + hidden + special)), out)
    out += ["--proc", "/proc", "--dev", "/dev"]
    for h in hidden:
        out += ["--dir", h]
    for m in sorted(mounts, key=lambda m: m.path.count("/")):
        out += ["--bind" if m.writable else "--ro-bind", m.source, m.path]
    if security.read_only_root:
        out += ["--remount-ro", "/"]
    out += ["--unshare-user", "--uid", str(security.uid), "--gid", str(security.gid), "--unshare-ipc",
            "--new-session", "--die-with-parent", "--info-fd", str(info_fd), "--chdir", cwd]
    if security.drop_all_capabilities:
        out += ["--cap-drop", "ALL"]
    for cap in security.add_capabilities:
        out += ["--cap-add", cap]
    return out + ["--", *argv]


class Process(subprocess.Popen):
    """A container's process; ``group`` is the process group its signals go to (the sandboxed
    process runs in a session of its own, so bubblewrap itself keeps running until it exits)."""

    group: int


def start(argv: list[str], *, env: dict[str, str], cwd: str, log: int, sandbox: dict | None) -> Process:
    """Start ``argv`` as a plain process (``sandbox`` None) or in the sandbox (``sandbox``: the keyword
    arguments of bwrap_argv but ``info_fd``)."""
    if sandbox is None:
        proc = Process(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                       start_new_session=True)
        proc.group = proc.pid
        return proc
    if os.sep not in argv[0] and shutil.which(argv[0], path=env.get("PATH")) is None or \
            os.sep in argv[0] and not os.access(argv[0], os.X_OK):
        raise FileNotFoundError(2, "No such file or directory")  # as exec in the container would fail
    read, write = os.pipe()
    try:
        proc = Process(bwrap_argv(argv, cwd=cwd, info_fd=write, **sandbox), env=env, stdin=subprocess.DEVNULL,
                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(write,))
    finally:
        os.close(write)
    try:
        data = b""
        while select.select([read], [], [], 30)[0]:
            chunk = os.read(read, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read)
    try:
        proc.group = int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        proc.group = proc.pid  # bubblewrap failed before starting the process; its error is in the log
    return proc
