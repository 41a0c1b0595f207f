"""HTTP: the REST paths the official client uses, discovery, authentication, RBAC for
ServiceAccount tokens, admission decoding, dry runs, chunked watch streams."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import parse_qs, urlsplit

from tests.kube import admission, rbac

from .resources import BY_PATH, PODS, RESOURCES, ApiError, Resource, _bad_request
from .selectors import parse_field_selector, parse_label_selector

if TYPE_CHECKING:
    from .cluster import FakeCluster


KUBE_VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
                "compiler": "gc", "platform": "linux/amd64"}
MAX_BODY = 3 * 1024 * 1024
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _group_versions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


def _api_resource_list(group: str, version: str) -> dict | None:
    rs = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rs:
        return None
    resources = []
    for r in rs:
        resources.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                          "kind": r.kind, "verbs": _VERBS})
        if r.has_status:
            resources.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": ["get", "patch", "update"]})
    if group == "" and version == "v1":
        resources += [{"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
                      {"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                       "version": "v1", "kind": "Eviction", "verbs": ["create"]}]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, cluster: "FakeCluster") -> None:
        self.cluster = cluster
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self):  # type: ignore[override]
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.conn_lock:
            self.connections.add(sock)
        return sock, addr

    def shutdown_request(self, request):  # type: ignore[override]
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver/1.31"
    server: _HTTPServer
    service_account: tuple[str, str] | None = None  # the request's ServiceAccount (namespace, name), if any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        self.server.cluster.request_log.append(format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing -------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    break
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
            data = self.rfile.read(length) if length else b""
        if len(data) > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
        return data

    def send_json(self, code: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.server.cluster._count_bytes(len(data))

    def send_text(self, code: int, text: str | bytes, ctype: str = "text/plain") -> None:
        data = text.encode() if isinstance(text, str) else text
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.server.cluster._count_bytes(len(data))

    def start_chunked(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            self.server.cluster._count_bytes(len(data))

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _handle(self, method: str) -> None:
        cluster = self.server.cluster
        cluster._count_request(method, self.path)
        try:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            body = self._read_body()
            public = url.path.rstrip("/") in ("/version", "/healthz", "/livez", "/readyz")
            auth = self.headers.get("Authorization") or ""
            self.service_account = cluster.service_account_tokens.get(auth[len("Bearer "):]) \
                if auth.startswith("Bearer ") else None
            if self.service_account is None and cluster.token and not public and auth != f"Bearer {cluster.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._route(method, url.path, query, body)
        except ApiError as exc:
            self._safe_error(exc)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: answer 500 and keep it visible to the test
            import traceback

            cluster.errors.append(traceback.format_exc())
            self._safe_error(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}"))

    def _safe_error(self, exc: ApiError) -> None:
        try:
            self.send_json(exc.code, exc.status())
        except OSError:
            self.close_connection = True

    def _json_body(self, body: bytes) -> Any:
        if not body:
            raise _bad_request("the request body is empty")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise _bad_request(f"the body of the request could not be decoded as JSON: {exc}") from None

    # -- routing --------------------------------------------------------------------------------

    def _route(self, method: str, path: str, q: dict[str, str], body: bytes) -> None:
        cluster = self.server.cluster
        store = cluster.store
        parts = [p for p in path.split("/") if p]
        not_found = ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if method == "GET":
            if parts == ["version"]:
                return self.send_json(200, KUBE_VERSION)
            if parts in (["healthz"], ["livez"], ["readyz"]):
                return self.send_text(200, "ok")
            if parts == ["api"]:
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{cluster.port}"}]})
            if parts == ["apis"]:
                return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                     "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                    for g, vs in _group_versions().items()]})
            if len(parts) == 2 and parts[0] == "apis" and parts[1] in _group_versions():
                vs = _group_versions()[parts[1]]
                return self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                            "versions": [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in vs],
                                            "preferredVersion": {"groupVersion": f"{parts[1]}/{vs[0]}", "version": vs[0]}})
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise not_found
        if not rest:
            listing = _api_resource_list(group, version)
            if listing is None or method != "GET":
                raise not_found
            return self.send_json(200, listing)
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise not_found
        res = BY_PATH.get((group, version, rest[0]))
        if res is None or (ns is not None and not res.namespaced):
            raise not_found
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if res.namespaced and ns is None and (name is not None or method not in ("GET",)):
            raise not_found
        dry_run = self._dry_run(q, body if method == "DELETE" else b"")
        watching = watch_path or (method == "GET" and name is None and q.get("watch") in ("true", "1"))
        if self.service_account is not None:
            self._authorize(res, ns, name, sub, rbac.verb_of(method, name, watching))
        if watching:
            if method != "GET" or sub is not None:
                raise not_found
            if name is not None:
                q = dict(q, fieldSelector=",".join(filter(None, [q.get("fieldSelector"), f"metadata.name={name}"])))
            return self._watch(res, ns, q)
        if name is None:
            if method == "GET":
                try:
                    limit = int(q.get("limit") or 0)
                except ValueError:
                    raise _bad_request(f"limit: invalid value {q['limit']!r}") from None
                items, meta = store.list(res, ns, q.get("labelSelector", ""), q.get("fieldSelector", ""), limit,
                                         q.get("continue", ""), q.get("resourceVersion", ""),
                                         q.get("resourceVersionMatch", ""))
                return self.send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                            "metadata": meta, "items": items})
            if method == "POST":
                decoded, warnings = self._decode(res, self._json_body(body), q)
                obj = store.create(res, ns, decoded, dry_run)
                return self.send_json(201, obj, self._warning_headers(warnings))
            if method == "DELETE":
                opts = self._delete_options(q, body)
                gone, warnings = store.delete_collection(res, ns, q.get("labelSelector", ""), q.get("fieldSelector", ""),
                                                         opts.get("propagationPolicy"), dry_run)
                return self.send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                            "metadata": {"resourceVersion": str(store.rv)}, "items": gone},
                                      self._warning_headers(warnings))
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if sub is None or (sub == "status" and res.has_status):
            if method == "GET":
                return self.send_json(200, store.get(res, ns, name))
            if method == "PUT":
                decoded, warnings = self._decode(res, self._json_body(body), q)
                return self.send_json(200, store.replace(res, ns, name, decoded, sub, dry_run),
                                      self._warning_headers(warnings))
            if method == "PATCH":
                patch, warnings = self._json_body(body), []
                if isinstance(patch, dict):  # a merge patch is a partial object of the kind
                    patch, warnings = self._decode(res, patch, q)
                return self.send_json(200, store.patch(res, ns, name, self.headers.get("Content-Type", ""),
                                                       patch, sub, dry_run), self._warning_headers(warnings))
            if method == "DELETE" and sub is None:
                opts = self._delete_options(q, body)
                gone, warnings = store.delete(res, ns, name, opts.get("propagationPolicy"), dry_run,
                                              opts.get("preconditions"))
                if res is PODS:
                    return self.send_json(200, gone, self._warning_headers(warnings))
                return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                            "details": {"name": name, "group": res.group, "kind": res.plural,
                                                        "uid": gone["metadata"]["uid"]}},
                                      self._warning_headers(warnings))
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if res is PODS and sub == "log" and method == "GET":
            return cluster._serve_log(self, ns or "", name, q)
        if res is PODS and sub == "eviction" and method == "POST":
            store.get(res, ns, name)
            cluster._evict(ns or "", name, wait=False)
            return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "code": 201})
        raise not_found

    def _authorize(self, res: Resource, ns: str | None, name: str | None, sub: str | None, verb: str) -> None:
        """A ServiceAccount's request is allowed only by the rules of the Roles bound to it (RBAC)."""
        sa_ns, sa = self.service_account
        resource = f"{res.plural}/{sub}" if sub else res.plural
        rules = self.server.cluster.store.rules_for(ns, sa_ns, sa) if ns is not None else []
        if not rbac.permits(rules, verb, res.group, resource, name):
            raise ApiError(403, "Forbidden", rbac.forbidden_message(
                f"system:serviceaccount:{sa_ns}:{sa}", verb, res.group, resource, name, ns, res.plural),
                {"name": name or "", "group": res.group, "kind": res.plural})

    @staticmethod
    def _decode(res: Resource, body: Any, q: dict[str, str]) -> tuple[Any, list[str]]:
        """The body as the server's decoder leaves it: wrong JSON types refused; unknown fields refused
        under ``fieldValidation=Strict``, else dropped (with a warning under Warn, the default)."""
        mode = q.get("fieldValidation") or "Warn"
        if mode not in ("Ignore", "Warn", "Strict"):
            raise _bad_request(f'fieldValidation parameter unsupported: "{mode}"; supported values: '
                               '"Ignore", "Warn", "Strict"')
        if not isinstance(body, dict):
            return body, []
        decoded, unknown, errors = admission.decode(res.kind, body)
        handled = f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
        if errors:
            raise _bad_request(handled + errors[0])
        if unknown and mode == "Strict":
            raise _bad_request(handled + "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
        return decoded, [f'unknown field "{u}"' for u in unknown] if mode == "Warn" else []

    @staticmethod
    def _warning_headers(warnings: list[str]) -> list[tuple[str, str]]:
        def quoted(text: str) -> str:  # an RFC 7230 quoted-string, as the server writes it
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        return [("Warning", f"299 - {quoted(w)}") for w in warnings]

    def _dry_run(self, q: dict[str, str], body: bytes) -> bool:
        values = [q["dryRun"]] if "dryRun" in q else []
        if body:
            try:
                values += json.loads(body).get("dryRun") or []
            except (ValueError, AttributeError):
                pass
        for v in values:
            if v != "All":
                raise _bad_request(f'Unsupported value: "{v}": supported values: "All"')
        return bool(values)

    def _delete_options(self, q: dict[str, str], body: bytes) -> dict:
        opts: dict = {}
        if body:
            try:
                opts = json.loads(body) or {}
            except ValueError:
                raise _bad_request("the body of a DeleteOptions request could not be decoded") from None
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        orphan = q.get("orphanDependents", opts.get("orphanDependents"))
        if orphan is not None and not opts.get("propagationPolicy"):
            opts["propagationPolicy"] = "Orphan" if str(orphan).lower() == "true" else "Background"
        return opts

    # -- watch ----------------------------------------------------------------------------------

    def _watch(self, res: Resource, ns: str | None, q: dict[str, str]) -> None:
        cluster = self.server.cluster
        store = cluster.store
        lmatch = parse_label_selector(q.get("labelSelector", ""))
        fmatch = parse_field_selector(q.get("fieldSelector", ""), res)
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else random.uniform(1800, 3600)
        deadline = time.monotonic() + timeout
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        rv_param = q.get("resourceVersion", "")

        def matches(o: dict | None) -> bool:
            if o is None:
                return False
            m = o["metadata"]
            return ((ns is None or m.get("namespace") == ns) and lmatch(m.get("labels") or {}) and fmatch(o))

        expired = False
        with store.lock:
            if rv_param in ("", "0"):
                initial = [o for _, o in sorted(store.objects[res.plural].items()) if matches(o)]
                cursor = store.rv
            else:
                try:
                    cursor = int(rv_param)
                except ValueError:
                    raise _bad_request(f"invalid resource version: {rv_param}") from None
                initial = []
                expired = cursor < store.compacted_rv
        self.close_connection = True
        self.start_chunked("application/json")

        def send(etype: str, obj: dict) -> None:
            self.chunk(json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n")

        try:
            if expired:
                send("ERROR", ApiError(410, "Expired", f"too old resource version: {cursor} ({store.compacted_rv})").status())
                return self.end_chunked()
            for o in initial:
                send("ADDED", o)
            while not store.closed and not cluster._stopping:
                with store.cond:
                    events = store.events_after(cursor)
                    if not events:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        store.cond.wait(min(remaining, 0.5))
                        events = store.events_after(cursor)
                for rv, etype, plural, obj, old in events:
                    cursor = rv
                    if plural != res.plural:
                        continue
                    if etype == "ADDED" and matches(obj):
                        send("ADDED", obj)
                    elif etype == "MODIFIED":
                        now_m, was_m = matches(obj), matches(old)
                        if now_m:
                            send("MODIFIED" if was_m else "ADDED", obj)
                        elif was_m:
                            send("DELETED", obj)
                    elif etype == "DELETED" and matches(obj):
                        send("DELETED", obj)
                if time.monotonic() >= deadline:
                    break
            if bookmarks:
                send("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                  "metadata": {"resourceVersion": str(cursor)}})
            self.end_chunked()
        except OSError:
            pass
