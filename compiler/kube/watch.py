"""One kind of object kept current at O(changes) cost: a paginated list, then a watch.

:class:`Informer` lists once, in pages of :data:`PAGE` (``limit`` and ``continue``: every page of
one list is the same snapshot), with a label or field selector, keeping a small summary per object
(:mod:`xtrc.kube.summary`) rather than the object. :meth:`Informer.start` then watches from the
list's resourceVersion in a background thread, one watch request of at most
:data:`WATCH_SECONDS` after another, each resuming from the last resourceVersion seen (bookmarks
included); a 410 Gone (the version was compacted away) lists again. The caller's thread takes the
changes with :meth:`Informer.drain`, which never blocks and never calls the API.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any, Callable, Generic, TypeVar

from xtrc.kube.client import REQUEST_TIMEOUT, ClusterError, api_message, call, is_api_error

S = TypeVar("S")
PAGE = 500
"""Objects per list page: a page of stage Jobs is ~2 MB of JSON."""
WATCH_SECONDS = 300
"""``timeoutSeconds`` of one watch request (the server ends it then; the next resumes)."""
_LIST_RESTARTS = 5  # a paginated list whose snapshot expired (410) starts again, at most this often
_BACKOFF_MAX = 30.0

class _Unavailable(Exception):
    pass


Change = tuple[str, Any, Any]
"""(uid, summary before or None, summary after or None) of one object."""


class Informer(Generic[S]):
    """Summaries of the objects one list call selects, kept current by a watch (see the module docstring).

    ``list_fn(*args, **selector)`` is an official-client list method (``list_namespaced_job``,
    ``list_namespaced_custom_object``...); ``summarize`` turns one object's JSON into its summary
    (None: not kept). ``optional``: a list refused with 403 (the Role may not read this kind) or
    404 (no such kind: a cluster without that CRD) leaves the informer empty and idle, with
    :attr:`unavailable` saying why, instead of raising."""

    def __init__(self, list_fn: Callable[..., Any], *args: Any, what: str, summarize: Callable[[dict], S | None],
                 optional: bool = False, **selector: str) -> None:
        self._list_fn = list_fn
        self._args = args
        self._selector = selector
        self.what = what
        self._summarize = summarize
        self.items: dict[str, S] = {}
        """uid → summary, as of the last :meth:`drain` (or :meth:`list`)."""
        self.resource_version = ""
        self.error = ""
        """What went wrong with the watch, while it is retried ("" while it works)."""
        self.optional = optional
        self.unavailable = ""
        """Why an optional kind cannot be read ("" when it can)."""
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None

    # --- the caller's side -----------------------------------------------------------------
    def list(self) -> list[Change]:
        """List everything (paginated) and replace the summaries; the changes against the old ones."""
        try:
            items, self.resource_version = self._list_all()
        except _Unavailable as exc:
            self.unavailable = str(exc)
            return []
        return self._replace(items)

    def start(self) -> None:
        """Watch from the last list's resourceVersion in a background thread (once)."""
        if self._thread is None and not self.unavailable:
            self._thread = threading.Thread(target=self._run, name=f"xtrc-watch-{self.what}", daemon=True)
            self._thread.start()

    @property
    def watching(self) -> bool:
        return self._thread is not None

    def drain(self) -> list[Change]:
        """Apply what the watch saw since the last call; the changes. Never blocks."""
        changes: list[Change] = []
        while self._queue:
            uid, summary = self._queue.popleft()
            if uid == "":  # a new list after 410 Gone: summary holds every item
                changes += self._replace(summary)
                continue
            before = self.items.get(uid)
            if summary is None:
                self.items.pop(uid, None)
            else:
                self.items[uid] = summary
            if before is not summary:
                changes.append((uid, before, summary))
        return changes

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    # --- internals -------------------------------------------------------------------------
    def _replace(self, items: dict[str, S]) -> list[Change]:
        old, self.items = self.items, items
        changes: list[Change] = [(uid, old.get(uid), s) for uid, s in items.items() if old.get(uid) != s]
        changes += [(uid, s, None) for uid, s in old.items() if uid not in items]
        return changes

    def _list_all(self) -> tuple[dict[str, S], str]:
        for _ in range(_LIST_RESTARTS):
            items: dict[str, S] = {}
            token = ""
            while True:
                extra = {"_continue": token} if token else {}
                response = call(self._list_fn, *self._args, what=f"list {self.what}",
                                ok=(403, 404, 410) if self.optional else (410,), limit=PAGE,
                                _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **self._selector, **extra)
                if is_api_error(response) and response.status in (403, 404):
                    raise _Unavailable(f"cannot list {self.what}: {api_message(response)}")
                if is_api_error(response):
                    break  # the snapshot of this paginated list expired: start it again
                body = json.loads(response.data)
                for obj in body.get("items") or []:
                    summary = self._summarize(obj)
                    if summary is not None:
                        items[obj["metadata"]["uid"]] = summary
                meta = body.get("metadata") or {}
                token = meta.get("continue") or ""
                if not token:
                    return items, str(meta.get("resourceVersion") or "")
        raise ClusterError(f"list {self.what}: the list expired {_LIST_RESTARTS} times while paging; "
                           "the API server compacts faster than this client reads")

    def _watch_fn(self, **kwargs: Any) -> Any:
        # A plain function (no return type in its docstring): Watch then hands over each event's
        # JSON as it came, and does not build the official client's models.
        response = self._list_fn(*self._args, **self._selector, **kwargs)
        if 200 <= getattr(response, "status", 200) < 300:
            self.error = ""  # connected again
        return response

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client import ApiException
        from urllib3.exceptions import HTTPError

        self._watch = watch.Watch()
        delay = 0.5
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(self._watch_fn, resource_version=self.resource_version,
                                                timeout_seconds=WATCH_SECONDS, allow_watch_bookmarks=True,
                                                _request_timeout=(REQUEST_TIMEOUT, WATCH_SECONDS + 30)):
                    self._event(event)
                    if self._stop.is_set():
                        return
                self.error, delay = "", 0.5
            except ApiException as exc:
                if exc.status == 410:  # too old: what happened since is lost, so list again
                    try:
                        items, self.resource_version = self._list_all()
                    except ClusterError as err:
                        self.error = str(err)
                        delay = self._pause(delay)
                        continue
                    self._queue.append(("", items))
                    self.error, delay = "", 0.5
                    continue
                self.error = f"watch {self.what}: {api_message(exc)}"  # the server's reason, e.g. RBAC's
                delay = self._pause(delay)
            except (HTTPError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                self.error = f"watch {self.what}: cannot reach the Kubernetes API ({type(exc).__name__}: {exc})"
                delay = self._pause(delay)

    def _event(self, event: dict) -> None:
        obj = event.get("raw_object") or event.get("object") or {}
        meta = obj.get("metadata") or {}
        if meta.get("resourceVersion"):
            self.resource_version = meta["resourceVersion"]
        kind = event.get("type")
        if kind == "BOOKMARK" or not meta.get("uid"):
            return
        self._queue.append((meta["uid"], None if kind == "DELETED" else self._summarize(obj)))

    def _pause(self, delay: float) -> float:
        self._stop.wait(delay)
        return min(delay * 2, _BACKOFF_MAX)
