"""A local stand-in for the Hugging Face hub's revision API, served over real HTTP.

Routes (the hub's own, as huggingface_hub's ``HfApi.model_info`` / ``dataset_info`` and
``hf_hub_download`` call them):

    GET /api/models/{repo}/revision/{revision}
    GET /api/datasets/{repo}/revision/{revision}
    HEAD|GET /{repo}/resolve/{revision}/{file}    a model's files, per commit (``FakeHub.files``)

``revision`` must arrive URL-quoted whole (``refs%2Fpr%2F6``), as the hub requires. Answers: 200
with the hub's JSON (``id``, ``sha``, ``lastModified``, ``siblings``…); 404 with ``X-Error-Code:
RepoNotFound`` or ``RevisionNotFound``; 401 with ``X-Error-Code: GatedRepo`` for a gated repository
without a valid ``Authorization: Bearer`` token (its files too). Every request is recorded, with
its Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from tests.helpers import LoopbackServer


def sha_of(text: str) -> str:
    """A commit-like 40-hex sha, derived from ``text``."""
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class Repo:
    refs: dict[str, str]
    """Branch/ref name → commit sha (a commit sha is a revision too)."""
    gated: bool = False
    commits: set[str] = field(default_factory=set)
    """Every commit the repository ever had (an old commit stays readable by its sha)."""

    def commit(self, revision: str) -> str | None:
        return self.refs.get(revision) or (revision if revision in self.commits | set(self.refs.values()) else None)


@dataclass
class FakeHub:
    token: str = "hf_test_token_0123456789"
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)
    """(kind: "models" | "datasets", repo id) → its refs."""
    any_repo: bool = False
    """Answer for every repository, as if it existed with only a main branch (for plans of whole specs)."""
    files: dict[str, Path] = field(default_factory=dict)
    """Commit sha → the directory of a model's files at that commit."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(raw path, Authorization header) of every request."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, repo: str, *refs: str, gated: bool = False) -> None:
        self.repos[(kind, repo)] = Repo({ref: sha_of(f"{kind}/{repo}@{ref}") for ref in refs or ("main",)}, gated)

    def move(self, kind: str, repo: str, ref: str = "main") -> str:
        """A new commit on ``ref``: its sha changes (what an upload to the hub does)."""
        repo_ = self.repos[(kind, repo)]
        repo_.commits.add(repo_.refs[ref])
        repo_.refs[ref] = sha_of(f"{kind}/{repo}@{ref}/{repo_.refs[ref]}")
        return repo_.refs[ref]

    def sha(self, kind: str, repo: str, ref: str = "main") -> str:
        return self.repos[(kind, repo)].refs[ref]

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.requests]

    def file(self, path: str, authorization: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """A model file: ``/{repo}/resolve/{revision}/{name}`` (404 EntryNotFound when absent; 401
        GatedRepo for a gated repository without the token)."""
        with self.lock:
            self.requests.append((path, authorization))
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        revision, _, name = rest.partition("/")
        repo = self.repos.get(("models", repo_id))
        if repo is not None and repo.gated and authorization != f"Bearer {self.token}":
            return 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to this repo is restricted"}, b""
        sha = None if repo is None else repo.commit(unquote(revision))
        folder = self.files.get(sha or "")
        if folder is None or not (folder / name).is_file():
            return 404, {"X-Error-Code": "EntryNotFound"}, b""
        data = (folder / name).read_bytes()
        return 200, {"X-Repo-Commit": str(sha), "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], dict]:
        with self.lock:
            self.requests.append((path, authorization))
        parts = path.split("/")
        if len(parts) < 5 or parts[1] != "api" or parts[2] not in ("models", "datasets") or "revision" not in parts:
            return 404, {}, {"error": "Sorry, we can't find the page you are looking for."}
        kind = parts[2]
        at = len(parts) - 1 - parts[::-1].index("revision")
        repo_id, quoted = "/".join(parts[3:at]), "/".join(parts[at + 1:])
        repo = self.repos.get((kind, repo_id))
        if repo is None and self.any_repo:
            with self.lock:
                self.add(kind, repo_id, *{"main", unquote(quoted)})
                repo = self.repos[(kind, repo_id)]
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, \
                {"error": "Repository not found"}
        if repo.gated and authorization != f"Bearer {self.token}":
            return 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to this repo is restricted"}, \
                {"error": f"Access to {kind[:-1]} {repo_id} is restricted. You must have access to it and be "
                          "authenticated to access it. Please log in."}
        revision = unquote(quoted)
        if "/" in quoted:  # an unquoted refs/… revision: the hub reads it as a path, not a revision
            revision = ""
        sha = repo.commit(revision)
        if sha is None:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, \
                {"error": f"Invalid rev id: {revision}"}
        body = {
            "_id": sha[:24], "id": repo_id, "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": sha, "lastModified": "2026-11-30T12:00:00.000Z", "createdAt": "2022-03-02T23:29:04.000Z",
            "private": False, "gated": "manual" if repo.gated else False, "disabled": False,
            "downloads": 1000, "likes": 10, "tags": [], "cardData": {},
            "siblings": [{"rfilename": ".gitattributes"}, {"rfilename": "README.md"}],
        }
        if kind == "models":
            body.update({"modelId": repo_id, "library_name": "transformers", "pipeline_tag": "fill-mask"})
        return 200, {}, body


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._reply(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._reply(head=True)

    def _reply(self, *, head: bool) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            status, headers, body = self.hub.answer(path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json; charset=utf-8", **headers}
        else:
            status, headers, data = self.hub.file(path, self.headers.get("Authorization"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class Served(LoopbackServer):
    """A FakeHub on 127.0.0.1 in a thread; ``endpoint`` is what HF_ENDPOINT names."""

    def __init__(self, hub: FakeHub):
        super().__init__(type("Handler", (_Handler,), {"hub": hub}))
