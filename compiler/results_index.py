"""The results index: done cells' ``metrics.json``, gathered per experiment into a few shards, so
a report over thousands of stages reads a few objects instead of one per stage.

::

    experiments/<name>/results/<x>.json
        {"version": 1, "stages": {"<key>": {"key": "<key>", "marker": "<_SUCCESS identity>", "metrics": {...},
                                            "verified": {"<task>": {...}}, "stamp": "<sha256>"}}}

Shard ``x`` is the first hex digit of the stage key: 16 shards at most, so a report reads at
most 16 objects, and a save rewrites only the shards that gained entries.

The index is a cache, never the truth. An entry is used only when it names its own stage key
(one that names another key, or none, is read afresh) and while its stage's ``_SUCCESS`` is
the very marker it was read under (:func:`xtrc.store.marker_identity`, from the store's listing):
a stage re-run after its ``_SUCCESS`` was deleted commits a new marker, and its entry is read
afresh. Writers are the orchestration loop (as stages finish; saved at most every
:data:`xtrc.orchestrate.INDEX_SAVE_SECONDS` and when it ends) and ``xtrc report`` (what it had to
read stage by stage); two writers racing lose an entry at worst, which the next reader re-reads.

An entry may also carry what a check of the cell against its prediction records found
(``verified``: per task, the headline metric recomputed per language and how the predictions are
degenerate; :mod:`xtrc.report.verify`) and a ``stamp``: a SHA-256 over the check's version, the
key, the marker, the entry's results for those tasks and ``verified``. A cell is checked from its
records once per commit of its stage; later reports reuse ``verified`` only while the stamp
matches, so an entry whose value was changed (or that moved to another key or marker) keeps its
stamp in vain and is checked from the records again. The stamp is a checksum, not a signature:
anyone who can write the store can forge one, as they could write ``metrics.json`` itself.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

from xtrc.store import METRICS_JSON, Store, write_atomic

VERSION = 1
SHARD_DIGITS = 1
CHECKS_VERSION = 1
"""Of the checks behind ``verified`` (:mod:`xtrc.report.verify`): a change to what they compute
or how they judge bumps it, and every cell is checked from its records again once."""


@dataclass(frozen=True)
class StageMetrics:
    """One done stage's parsed ``metrics.json``, or why it could not be read."""

    key: str
    metrics: Any = None
    problem: str = ""


class ResultsIndex:
    """One experiment's results index on ``store``, read through ``fs`` ``workers`` requests at a time."""

    def __init__(self, store: Store, experiment: str, *, fs: Any = None, workers: int = 16) -> None:
        self.store = store
        self.experiment = experiment
        self.fs = fs if fs is not None else store.reader_fs(workers)
        self.workers = max(1, workers)
        self.problems: list[str] = []
        """What went wrong with the index itself (unreadable shard, failed write); results are unaffected."""
        self._entries: dict[str, dict[str, Any]] | None = None
        self._unsaved: set[str] = set()
        """Shards holding entries not yet written."""

    def metrics(self, markers: dict[str, str], *, cached: bool = True, save: bool = True) -> dict[str, StageMetrics]:
        """The metrics of every stage in ``markers`` (done key → its _SUCCESS identity): from the
        index where the entry was read under the same marker, else from the stage's own
        ``metrics.json`` (in parallel), and what was read that way goes into the index — written
        at once unless ``save`` is False (then at the next :meth:`save`). ``cached=False``: every
        stage read from its own file, the index neither read nor written."""
        entries = self._load() if cached else {}
        found: dict[str, StageMetrics] = {}
        stale = []
        for key, marker in markers.items():
            entry = entries.get(key)
            if entry is not None and entry.get("key") == key and entry.get("marker") == marker and "metrics" in entry:
                found[key] = StageMetrics(key, entry["metrics"])
            else:
                stale.append(key)
        if not stale:
            return found
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="xtrc-results") as pool:
            for result in pool.map(self._read_stage, stale):
                found[result.key] = result
        fresh = {key: {"key": key, "marker": markers[key], "metrics": found[key].metrics}
                 for key in stale if not found[key].problem}
        if cached and fresh:
            assert self._entries is not None
            self._entries.update(fresh)
            self._unsaved |= {key[:SHARD_DIGITS] for key in fresh}
            if save:
                self.save()
        return found

    def verification(self, key: str, marker: str, metrics: Any, tasks: Iterable[str]) -> dict[str, Any] | None:
        """What the check of ``tasks`` found when it last read the stage's prediction records, or
        None (never checked under this marker, another task set, or a stamp that does not match
        ``metrics``: check again)."""
        entry = (self._entries or {}).get(key)
        if entry is None or entry.get("key") != key or entry.get("marker") != marker:
            return None
        verified = entry.get("verified")
        if not isinstance(verified, dict) or not set(tasks) <= set(verified):
            return None
        if entry.get("stamp") != stamp(key, marker, metrics, verified):
            return None
        return verified

    def set_verification(self, key: str, marker: str, metrics: Any, verified: dict[str, Any]) -> None:
        """Keep what a check from the records found for a stage the index holds under ``marker``
        (saved with the next :meth:`save`); nothing for a stage it does not hold."""
        entry = (self._entries or {}).get(key)
        if entry is None or entry.get("key") != key or entry.get("marker") != marker:
            return
        signed = stamp(key, marker, metrics, verified)
        if entry.get("stamp") == signed and entry.get("verified") == verified:
            return
        entry["verified"], entry["stamp"] = verified, signed
        self._unsaved.add(key[:SHARD_DIGITS])

    def _read_stage(self, key: str) -> StageMetrics:
        try:
            raw = self.fs.cat_file(self.store.layout.stage(key, METRICS_JSON))
        except FileNotFoundError:
            return StageMetrics(key, problem=f"stage {key} is done but has no {METRICS_JSON}")
        try:
            return StageMetrics(key, json.loads(raw))
        except ValueError as exc:
            return StageMetrics(key, problem=f"stage {key}: {METRICS_JSON} is not JSON ({exc})")

    def _load(self) -> dict[str, dict[str, Any]]:
        """Every shard present, read once per instance (a listing, then the shards in parallel)."""
        if self._entries is not None:
            return self._entries
        self._entries = {}
        try:
            names = sorted(self.fs.find(self.store.layout.results(self.experiment)))
        except FileNotFoundError:
            names = []
        except OSError as exc:
            self.problems.append(f"cannot list the results index: {type(exc).__name__}: {exc}")
            names = []
        names = [n for n in names if n.endswith(".json") and len(n.rsplit("/", 1)[-1]) == SHARD_DIGITS + 5]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="xtrc-results") as pool:
            for name, stages in pool.map(self._read_shard, names):
                if stages is not None:
                    self._entries.update(stages)
        return self._entries

    def _read_shard(self, name: str) -> tuple[str, dict[str, Any] | None]:
        try:
            shard = json.loads(self.fs.cat_file(name))
            if shard.get("version") != VERSION or not isinstance(shard.get("stages"), dict):
                raise ValueError(f"not a version-{VERSION} shard")
            return name, {k: v for k, v in shard["stages"].items() if isinstance(v, dict)}
        except (OSError, ValueError, AttributeError) as exc:
            self.problems.append(f"results index shard {name} ignored ({type(exc).__name__}: {exc}); "
                                 "its stages are read one by one and the shard is rewritten")
            return name, None

    def save(self) -> None:
        """Write every shard with unsaved entries, each whole and atomically; a shard that fails
        stays unsaved (and is noted in :attr:`problems`)."""
        if not self._unsaved or self._entries is None:
            return
        shards: dict[str, dict[str, Any]] = {shard: {} for shard in self._unsaved}
        for key, entry in self._entries.items():
            if key[:SHARD_DIGITS] in shards:
                shards[key[:SHARD_DIGITS]][key] = entry

        def write(shard: str) -> None:
            data = json.dumps({"version": VERSION, "stages": shards[shard]}, sort_keys=True, separators=(",", ":"))
            write_atomic(self.fs, self.store.layout.results(self.experiment, f"{shard}.json"), data.encode())

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="xtrc-results") as pool:
            futures = {shard: pool.submit(write, shard) for shard in sorted(shards)}
            for shard, future in futures.items():
                try:
                    future.result()
                    self._unsaved.discard(shard)
                except Exception as exc:  # a cache write never fails the caller
                    self.problems.append(f"results index shard {shard}.json not updated "
                                         f"({type(exc).__name__}: {exc}); reports read those stages one by one")


def stamp(key: str, marker: str, metrics: Any, verified: dict[str, Any]) -> str:
    """The checksum binding a check's findings to what was checked: the checks' version, the stage
    key, its marker, its results for the checked tasks and the findings themselves."""
    tasks = metrics.get("tasks") if isinstance(metrics, dict) else None
    checked = {task: (tasks or {}).get(task) for task in sorted(verified)} if isinstance(tasks, dict) else None
    text = json.dumps([CHECKS_VERSION, key, marker, metrics.get("key") if isinstance(metrics, dict) else None,
                       checked, verified], sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()
