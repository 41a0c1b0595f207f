"""The results index: done cells' ``metrics.json``, gathered per experiment into a few shards, so
a report over thousands of stages reads a few objects instead of one per stage.

::

    experiments/<name>/results/<x>.json
        {"version": 1, "stages": {"<key>": {"key": "<key>", "marker": "<_SUCCESS identity>", "metrics": {...}}}}

Shard ``x`` is the first hex digit of the stage key: 16 shards at most, so a report reads at
most 16 objects, and a save rewrites only the shards that gained entries.

The index is a cache, never the truth. An entry is used only when it names its own stage key
(one that names another key, or none, is read afresh) and while its stage's ``_SUCCESS`` is
the very marker it was read under (:func:`xtrc.store.marker_identity`, from the store's listing):
a stage re-run after its ``_SUCCESS`` was deleted commits a new marker, and its entry is read
afresh. Writers are the orchestration loop (as stages finish; saved at most every
:data:`xtrc.orchestrate.INDEX_SAVE_SECONDS` and when it ends) and ``xtrc report`` (what it had to
read stage by stage); two writers racing lose an entry at worst, which the next reader re-reads.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from xtrc.store import METRICS_JSON, Store, write_atomic

VERSION = 1
SHARD_DIGITS = 1


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
