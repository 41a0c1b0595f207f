"""Hub revisions: every Hugging Face dataset and model a plan reads, pinned to a commit sha.

A branch such as ``main`` (or ``refs/convert/parquet``, ``refs/pr/6``) moves when its repository
gets a new commit; a stage keyed by the branch name would then read other data under the same
key. So the planner resolves each one, once, to the commit it points at, through the hub's API
(``GET {endpoint}/api/{datasets|models}/{repo}/revision/{quoted revision}`` answers JSON with
``sha``), and pins the answer in the store::

    experiments/<name>/revisions.json   {"revisions": {"datasets/google/xtreme@main": {"sha": …}, …}}

Later plans, restarts, the in-cluster orchestrator and every pod use the pinned sha, whatever
the hub did since; ``--refresh-revisions`` resolves again (and so gives moved inputs new keys).
A 40-hex sha given in the spec (``model_revision``, ``data.revisions``) is used as is, with no
request. The hub is ``HF_ENDPOINT`` when set (a process-level override, as for the hub library),
else the spec's ``hub.endpoint``, else https://huggingface.co. Its token is ``HF_TOKEN`` when set,
else the file at ``HF_TOKEN_PATH`` (where the orchestrator pod mounts ``hub.secret``; default
``$HF_HOME/token``, where ``hf auth login`` writes it), the order huggingface_hub reads them in:
the token is sent, never written or shown anywhere. Offline (``HF_HUB_OFFLINE=1``, or the endpoint does
not answer within ``XTRC_HUB_TIMEOUT`` seconds, default 5) a revision that is not pinned stays
unresolved: commands that only show keys say so, commands that run stages refuse.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Mapping
from urllib.parse import quote

from xtrc.errors import XtrcError
from xtrc.store import REVISIONS_FILE

HubKind = Literal["dataset", "model"]

LOCK_FILE = REVISIONS_FILE
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 5.0
TIMEOUT_ENV = "XTRC_HUB_TIMEOUT"
_SHA = re.compile(r"[0-9a-f]{40}")


def is_sha(revision: str | None) -> bool:
    """Whether ``revision`` is a full commit sha (used as is: it cannot move)."""
    return revision is not None and _SHA.fullmatch(revision) is not None


def pin_name(kind: HubKind, repo: str, revision: str | None) -> str:
    """``datasets/google/xtreme@main``: how a hub input is named in the lock and in a stage config."""
    return f"{kind}s/{repo}@{revision or 'main'}"


TOKEN_PATH_ENV = "HF_TOKEN_PATH"


def endpoint(spec_endpoint: str | None = None) -> str:
    """The hub's base URL: ``HF_ENDPOINT``, else the spec's ``hub.endpoint``, else the public hub."""
    return (os.environ.get("HF_ENDPOINT") or spec_endpoint or DEFAULT_ENDPOINT).rstrip("/")


def token_path() -> str:
    """Where huggingface_hub reads its token file: ``HF_TOKEN_PATH``, else ``$HF_HOME/token``."""
    if os.environ.get(TOKEN_PATH_ENV):
        return os.path.expanduser(os.environ[TOKEN_PATH_ENV])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return os.path.join(os.path.expanduser(home), "token")


def hub_token() -> tuple[str | None, str]:
    """The hub token and where it came from (for messages; never the value): ``HF_TOKEN``, else the
    file at :func:`token_path`. A token file named by ``HF_TOKEN_PATH`` that exists but cannot be read
    is an error (a Secret mounted with the wrong mode); an absent file means no token."""
    if os.environ.get("HF_TOKEN", "").strip():
        return os.environ["HF_TOKEN"].strip(), "HF_TOKEN"
    path = token_path()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as exc:
        if os.environ.get(TOKEN_PATH_ENV):
            raise XtrcError(f"{TOKEN_PATH_ENV}={path}: cannot read the hub token ({type(exc).__name__}); make the "
                            "file readable by this user, or unset HF_TOKEN_PATH") from None
        return None, ""
    return (text, f"the file {path}") if text else (None, "")


def _shown(url: str) -> str:
    """``url`` without a ``user:password@`` part (an endpoint may carry one; messages must not)."""
    return re.sub(r"//[^/@]*@", "//", url)


def revision_url(kind: HubKind, repo: str, revision: str, base: str | None = None) -> str:
    """The API route that names the commit ``revision`` of ``repo`` points at (refs/… quoted whole)."""
    return f"{base or endpoint()}/api/{kind}s/{repo}/revision/{quote(revision, safe='')}"


class _Down(Exception):
    """The hub did not answer (or answered "try later"): nothing is known about the revision."""


class _Refused(Exception):
    """The hub answered: no such repository or revision, or no access. Retrying will not help."""


def resolve(kind: HubKind, repo: str, revision: str, *, token: str | None, timeout: float,
            base: str | None = None, token_source: str = "HF_TOKEN") -> str:
    """The commit sha ``revision`` of hub ``repo`` points at now (one request)."""
    url = revision_url(kind, repo, revision, base)
    headers = {"Accept": "application/json", "User-Agent": "xtrc"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    what = f"{kind} {repo}@{revision}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            body = response.read(1 << 22)
    except urllib.error.HTTPError as exc:
        code = exc.headers.get("X-Error-Code", "") if exc.headers else ""
        exc.close()
        if exc.code == 429 or exc.code >= 500:
            raise _Down(f"the hub answered HTTP {exc.code} for {what}; try again later") from None
        if code == "RevisionNotFound":
            raise _Refused(f"{what}: the {kind} has no revision {revision!r}; name a branch, tag or commit "
                           "sha it has") from None
        if code == "GatedRepo" or exc.code in (401, 403):
            need = (f"the token in {token_source} has no access to it: accept its terms on the hub, or use "
                    "another token") if token else ("it is gated or private: set HF_TOKEN (or HF_TOKEN_PATH) to a "
                                                   "token with access, and name its Secret in hub.secret for the pods")
            raise _Refused(f"{what}: HTTP {exc.code}, {need}") from None
        if exc.code == 404:
            raise _Refused(f"{what}: no such {kind} on {_shown(base or endpoint())} (a typo? a private repository needs "
                           "HF_TOKEN)") from None
        raise _Refused(f"{what}: the hub answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, socket.timeout) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Down(f"offline: cannot reach {_shown(base or endpoint())} ({type(reason).__name__}: {reason})") from None
    try:
        sha = json.loads(body).get("sha")
    except (ValueError, AttributeError):
        sha = None
    if not is_sha(sha):
        raise _Down(f"{_shown(url)} answered without a commit sha; is HF_ENDPOINT a Hugging Face hub?")
    return str(sha)


@dataclass
class Revisions:
    """The hub revisions of one plan: the lock's pins, the spec's own, and what was resolved now."""

    locked: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The store's lock as read: pin name → {"sha": …, "resolved_at": …}."""
    pins: Mapping[str, str] = field(default_factory=dict)
    """The spec's ``data.revisions``: a dataset id (or ``id@revision``) → the revision to use."""
    model_revision: str = "main"
    refresh: bool = False
    """Resolve every revision again, ignoring the lock."""
    online: bool = True
    token: str | None = field(default=None, repr=False)
    token_source: str = ""
    """Where the token came from (HF_TOKEN or a file), for messages."""
    base: str | None = None
    """The hub's base URL (:func:`endpoint`); None: HF_ENDPOINT or the public hub, read per request."""
    timeout: float = DEFAULT_TIMEOUT
    lock_reader: Callable[[], dict[str, dict[str, Any]]] | None = field(default=None, repr=False)
    """Reads the store's lock, on the first hub input that needs it (plans without any read no lock)."""
    lock_problem: str | None = None
    """Why the lock could not be read or written: what was resolved is then not pinned."""
    used: dict[str, str] = field(default_factory=dict)
    """Pin name (as resolved) → sha, for everything this plan reads."""
    fresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Entries resolved now, not yet written to the lock."""
    resolved_now: list[str] = field(default_factory=list)
    """Pin names this plan asked the hub about (and got a sha for)."""
    unresolved: dict[str, str] = field(default_factory=dict)
    """Pin name → why it is not known (offline, the hub failing): keys that use it are provisional."""
    refused: dict[str, str] = field(default_factory=dict)
    """Pin name → what the hub said against it (no such revision, no access): a spec to fix."""
    _down: str | None = None

    @classmethod
    def from_env(cls, *, hub_endpoint: str | None = None, **kwargs: Any) -> Revisions:
        """Settings from the environment; ``hub_endpoint`` is the spec's ``hub.endpoint`` (HF_ENDPOINT wins)."""
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        try:
            timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
        except ValueError:
            raise XtrcError(f"{TIMEOUT_ENV} must be a number of seconds") from None
        token, source = hub_token() if not offline else (None, "")
        revisions = cls(online=not offline, token=token, token_source=source, timeout=timeout,
                        base=endpoint(hub_endpoint) if hub_endpoint else None, **kwargs)
        if offline:
            revisions._down = "offline: HF_HUB_OFFLINE is set"
        return revisions

    def dataset(self, repo: str, revision: str | None) -> str | None:
        """The sha of the registry's ``repo@revision`` (the spec's pin first); None when unknown."""
        wanted = self.pins.get(f"{repo}@{revision or 'main'}") or self.pins.get(repo) or revision or "main"
        return self._sha("dataset", repo, wanted)

    def model(self, repo: str) -> str | None:
        return self._sha("model", repo, self.model_revision or "main")

    def _sha(self, kind: HubKind, repo: str, revision: str) -> str | None:
        name = pin_name(kind, repo, revision)
        if is_sha(revision):
            self.used[name] = revision
            return revision
        if name in self.used:
            return self.used[name]
        if name in self.unresolved or name in self.refused:
            return None
        if self.lock_reader is not None and not self.refresh:  # a refresh rewrites the lock, even a damaged one
            reader, self.lock_reader = self.lock_reader, None
            try:
                self.locked = reader()
            except XtrcError:
                raise
            except Exception as exc:  # any store failure: say which and go on unpinned
                self.lock_problem = f"cannot read the revisions lock ({type(exc).__name__}: {exc})"
        entry = None if self.refresh else self.locked.get(name)
        if entry is not None and is_sha(entry.get("sha")):
            self.used[name] = entry["sha"]
            return self.used[name]
        if self._down is not None:
            self.unresolved[name] = self._down
            return None
        try:
            sha = resolve(kind, repo, revision, token=self.token, timeout=self.timeout, base=self.base,
                          token_source=self.token_source)
        except _Down as exc:
            self._down = str(exc) if "cannot reach" in str(exc) else None  # one timeout for the whole plan
            self.unresolved[name] = str(exc)
            return None
        except _Refused as exc:
            self.refused[name] = str(exc)
            return None
        self.used[name] = sha
        self.resolved_now.append(name)
        self.fresh[name] = {"sha": sha, "resolved_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        return sha

    def summary(self) -> dict[str, Any]:
        """What `xtrc plan --json` shows (never the token)."""
        return {"commits": dict(sorted(self.used.items())), "resolved_now": sorted(self.resolved_now),
                "unresolved": dict(sorted(self.unresolved.items())), "refused": dict(sorted(self.refused.items())),
                "lock_problem": self.lock_problem}

    def digest(self) -> str:
        """A short hash of the commits this plan reads (changes when a refresh moved one)."""
        import hashlib

        return hashlib.sha256(json.dumps(self.used, sort_keys=True).encode()).hexdigest()[:16]

    def exit_code(self) -> int:
        """2 when the hub refused an input (fix the spec), 1 when some are unresolved (offline), else 0."""
        return 2 if self.refused else 1 if self.unresolved or (self.lock_problem and self.resolved_now) else 0

    def problems(self) -> list[str]:
        """One line per hub input whose commit is not known (or not pinned), saying why."""
        lines = [f"{name}: {why}" for name, why in sorted(self.refused.items())]
        by_reason: dict[str, list[str]] = {}
        for name, why in sorted(self.unresolved.items()):
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():  # offline, every input says the same
            lines.append(f"{', '.join(names)}: unresolved ({why})")
        if self.lock_problem and any(not is_sha(name.rsplit("@", 1)[1]) for name in self.used):
            lines.append(f"{self.lock_problem}: the revisions resolved now are not pinned")
        return lines


def lock_path(store: Any, experiment: str) -> str:
    return store.layout.experiment(experiment, LOCK_FILE)


def read_lock(store: Any, experiment: str) -> dict[str, dict[str, Any]]:
    """The experiment's pinned revisions ({} when there is no lock yet)."""
    path = lock_path(store, experiment)
    try:
        with store.fs.open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise XtrcError(f"{path}: not valid JSON ({exc}); re-plan with --refresh-revisions to resolve "
                        "every revision again and rewrite it") from None
    entries = data.get("revisions") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise XtrcError(f"{path}: has no 'revisions' object; re-plan with --refresh-revisions to rewrite it")
    return {k: v for k, v in entries.items() if isinstance(v, dict) and is_sha(v.get("sha"))}


def write_lock(store: Any, experiment: str, revisions: Revisions) -> bool:
    """Add what ``revisions`` resolved now to the lock (atomically); False when nothing was new."""
    from xtrc.store import write_atomic

    if not revisions.fresh:
        return False
    path = lock_path(store, experiment)
    try:
        current = read_lock(store, experiment)
    except XtrcError:
        current = {}
    merged = {**current, **revisions.fresh}
    text = json.dumps({"about": "hub revisions this experiment's stage keys use; xtrc plan --refresh-revisions "
                                "resolves them again", "revisions": dict(sorted(merged.items()))},
                      indent=1, sort_keys=True) + "\n"
    write_atomic(store.fs, path, text.encode())
    revisions.locked = merged
    revisions.fresh = {}
    return True
