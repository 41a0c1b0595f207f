"""Run one stage: skip if done, resume from the latest checkpoint, train, evaluate, commit.

This module knows one stage at a time (a :class:`~xtrc.stage.StageConfig`); it never knows about
arms, experiments or Kubernetes.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from xtrc import protocol, tasks
from xtrc.lease import LeaseHeld, default_ttl
from xtrc.stage import StageConfig, compute_key
from xtrc.store import METRICS_JSON, MODEL_DIR, PREDICTIONS_DIR, STAGE_JSON
from xtrc_runtime import metrics, retrieval
from xtrc_runtime.data import (
    DataError,
    DataLocation,
    Example,
    TaggingExample,
    example_texts,
    is_rust_panic,
    load,
    load_counted,
    read_rows,
    resolve,
    same_scheme_options,
)
from xtrc_runtime.device import prepare_device
from xtrc_runtime.evaluate import Result, evaluate, headline
from xtrc_runtime.features import Feature, encode
from xtrc_runtime.model import HeadSpec, TaskModel, load_encoder, save
from xtrc_runtime.storage import StageStore, content_cached, storage_options
from xtrc_runtime.tiny import BUILTIN_TINY, build_encoder, corpus_digest, train_tokenizer, wrap_tokenizer
from xtrc_runtime.train import Checkpointing, Trainer, TrainTask, _autocast_dtype

log = logging.getLogger("xtrc_runtime")


class ConfigError(Exception):
    """The stage cannot succeed as configured: exit 2, and the Job must not retry."""


def run_stage(config: StageConfig, *, workdir: Path | None = None, secret_dir: str | None = None,
              device: str | None = None) -> dict[str, Any]:
    """Run ``config`` to completion (or return at once if its _SUCCESS exists); a summary dict."""
    if compute_key(config.key_payload()) != config.key:
        raise ConfigError(f"the stage config does not hash to its key {config.key!r}: it was edited; "
                          "re-render it with `xtrc render`")
    options = storage_options(config.store, config.storage_options, secret_dir)
    store = StageStore(config.store, config.key, options)
    if store.done:
        log.info("stage %s is already done", config.key)
        return {"key": config.key, "status": "already-done"}
    _hold_lease(store)
    try:
        if store.done:  # another runner finished it while this one waited for the lease
            log.info("stage %s is already done", config.key)
            return {"key": config.key, "status": "already-done"}
        started = time.monotonic()
        if not store.exists(STAGE_JSON):
            store.write_json(STAGE_JSON, config.model_dump(mode="json", exclude={"storage_options"}))
        with tempfile.TemporaryDirectory(prefix=f"xtrc-{config.key}-", dir=workdir) as tmp:
            runner = _StageRunner(config, store, Path(tmp), options, torch.device(device or _default_device()))
            summary = runner.run()
        summary["seconds"] = round(time.monotonic() - started, 2)
        store.write_json(METRICS_JSON, summary)
        store.commit()
    finally:
        store.release()
    log.info("stage %s done in %.1fs", config.key, summary["seconds"])
    return summary


class StageBusy(Exception):
    """Another live process holds this stage's lease: a transient condition (exit 1), never a
    configuration error; nothing of the stage was touched."""


def _hold_lease(store: StageStore) -> None:
    """Take the stage's lease, waiting for a live holder up to ``XTRC_STAGE_LEASE_WAIT`` seconds
    (default: twice the lease's time-to-live, long enough for a holder that died to expire)."""
    seen: set[str] = set()

    def waiting(record: Any) -> None:
        if record.holder not in seen:
            seen.add(record.holder)
            log.info("waiting: stage %s is held by %s", store.key, record.describe())

    wait = os.environ.get("XTRC_STAGE_LEASE_WAIT")
    try:
        store.hold(wait_seconds=float(wait) if wait else 2 * default_ttl() + 5, on_wait=waiting)
    except LeaseHeld as exc:
        raise StageBusy(f"stage {store.key} is being run by {exc.record.describe()}; not touching it") from None


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class _StageRunner:
    def __init__(self, config: StageConfig, store: StageStore, tmp: Path, options: dict[str, Any],
                 device: torch.device):
        self.config = config
        self.store = store
        self.tmp = tmp
        self.device = device
        self.hp = config.hparams
        self.where = DataLocation(config.data_root, dict(config.data), same_scheme_options(config, options),
                                  dict(config.hub_revisions))
        self.autocast = _autocast_dtype(self.hp.precision, device)
        self.tokenizer_info: dict[str, Any] = {}
        prepare_device(device)

    def run(self) -> dict[str, Any]:
        c = self.config
        seed = c.seed if c.seed is not None else 0
        random.seed(seed)
        torch.manual_seed(seed)
        checked = self._preflight(seed)
        encoder, tokenizer = self._base_model()
        summary: dict[str, Any] = {"key": c.key, "kind": c.kind, "status": "done", "run": _run_info(self.device),
                                   "preflight": checked}
        if self.tokenizer_info:
            summary["tokenizer"] = self.tokenizer_info
        if c.kind == "retrieval":
            model = TaskModel(encoder, {}).to(self.device)
            summary["tasks"] = self._evaluate_retrieval(model, tokenizer)
            return summary

        train_tasks = list(c.train_tasks)
        dual = c.kind == "target" and protocol.dual_encoder([e.task for e in c.eval_tasks])
        if dual and self.hp.selection == "dev":
            raise ConfigError("selection: dev is not supported for dual-encoder stages (Mewsli-X, LAReQA): "
                              "set training.tasks.<task>.selection: last")
        examples = {t: self._load(t, "en", "train", self.hp.max_train_examples) for t in train_tasks}
        heads = self._heads(train_tasks, examples, dual)
        model = TaskModel(encoder, heads).to(self.device)
        phases, augmentation = self._phases(train_tasks, examples, heads, tokenizer, seed, dual)
        if augmentation:
            summary["augmentation"] = augmentation
        scorer = self._dev_scorer(model, tokenizer, train_tasks, heads) if self.hp.selection == "dev" else None
        summary["selection"] = self.hp.selection
        trainer = Trainer(model, self.hp, seed=seed, device=self.device, pad_id=tokenizer.pad_token_id,
                          evaluate=scorer,
                          on_progress=_ProgressWriter(self.store),
                          checkpointing=Checkpointing(self.hp.checkpoint_every_steps, self.hp.checkpoint_every_minutes,
                                                      self.store.save_checkpoint, self.tmp / "checkpoint"))
        resume = self.store.latest_checkpoint(self.tmp / "resume")
        position = trainer.train(phases, resume_dir=self.tmp / "resume" if resume is not None else None)
        summary["train"] = {"steps": position.global_step, "best_step": position.best_step,
                            "best_dev": position.best_score, "dev_history": position.history,
                            "examples": {t: len(e) for t, e in examples.items()}}
        if c.kind == "target":
            summary["tasks"] = self._evaluate_targets(model, tokenizer, next(iter(heads)), heads)
        if c.kind == "intermediate" or c.save_model:
            save(model, tokenizer, self.tmp / MODEL_DIR)
            self.store.upload_dir(self.tmp / MODEL_DIR, MODEL_DIR)
        return summary

    # --- model and data --------------------------------------------------------------------
    def _preflight(self, seed: int) -> dict[str, Any]:
        """Read and validate every split, translation and dictionary before any training."""
        from xtrc_runtime.augment import load_dictionaries, load_translations
        from xtrc_runtime.preflight import preflight

        aug = self.config.augmentation
        dictionaries = None
        if aug is not None and aug.code_switch is not None:
            cs = aug.code_switch
            dictionaries = lambda: load_dictionaries(resolve(cs.dictionaries), cs.languages,  # noqa: E731
                                                     self.where.storage_options or None)
        translations = None
        if aug is not None and aug.translate_train is not None:
            tt = aug.translate_train
            translations = lambda target, train: load_translations(target, train, tt, self.where, seed=seed)  # noqa: E731
        try:
            return preflight(self.config, self.where, dictionaries=dictionaries, translations=translations)
        except DataError as exc:
            raise ConfigError(str(exc)) from exc

    def _base_model(self) -> tuple[Any, Any]:
        c = self.config
        if c.init_from:
            upstream = self.store.upstream(c.init_from)
            if not self.store.fs.exists(f"{upstream}/_SUCCESS"):
                raise RuntimeError(f"upstream stage {c.init_from} is not done yet")
            self.store.download(f"{upstream}/{MODEL_DIR}", self.tmp / "upstream")
            return load_encoder(str(self.tmp / "upstream"))
        if c.model == BUILTIN_TINY:
            tokenizer = self._tiny_tokenizer()
            return build_encoder(len(tokenizer)), tokenizer
        if "://" in c.model:
            import fsspec

            fs, path = fsspec.core.url_to_fs(c.model, **self.where.storage_options)
            fs.get(path.rstrip("/") + "/", str(self.tmp / "base") + "/", recursive=True)
            return load_encoder(str(self.tmp / "base"))
        return load_encoder(c.model, revision=c.model_revision)

    def _tiny_tokenizer(self) -> Any:
        """The tiny model's tokenizer, trained on the text the config names (or the stage's own
        tasks' text); cached by a hash of that text and the settings, so it is trained once."""
        from tokenizers import Tokenizer

        started = time.monotonic()
        texts = self._tokenizer_texts()
        digest = corpus_digest(texts)
        data, origin = content_cached(f"tokenizers/{digest}.json", lambda: train_tokenizer(texts).to_str().encode(),
                                      self.store)
        tok = Tokenizer.from_str(data.decode())
        self.tokenizer_info = {"digest": digest, "texts": len(set(texts)), "vocab": tok.get_vocab_size(),
                               "from": origin, "seconds": round(time.monotonic() - started, 2)}
        log.info("tokenizer %s: %d pieces from %d texts (%s) in %.1fs", digest, tok.get_vocab_size(),
                 len(set(texts)), origin, self.tokenizer_info["seconds"])
        return wrap_tokenizer(tok)

    def _tokenizer_texts(self) -> list[str]:
        c = self.config
        parts = list(c.tokenizer_corpus) or [
            *((t, "en", split) for t in c.train_tasks for split in ("train", "dev")),
            *((ev.task, lang, "test") for ev in c.eval_tasks for lang in ev.languages),
        ]
        texts: list[str] = []
        missing: list[str] = []
        for task, language, split in parts:
            try:
                texts += _task_texts(task, language, split, self.where)  # type: ignore[arg-type]
            except DataError as exc:
                missing.append(f"{task}: {exc}")  # not every task has every split; preflight checks the rest
        if not texts:
            raise ConfigError("builtin:tiny-xlmr trains its tokenizer on the stage's data, but none was found ("
                              + "; ".join(missing[:3]) + "); set data.root (e.g. to builtin:fixtures/data) or "
                              "data.tasks.<task>.path")
        return texts

    def _load(self, task: str, language: str, split: str, limit: int | None) -> list[Example]:
        return self._load_counted(task, language, split, limit)[0]

    def _load_counted(self, task: str, language: str, split: str,
                      limit: int | None) -> tuple[list[Example], dict[str, Any]]:
        try:
            if task == "mewslix":  # mention-entity pairs for the dual encoder
                from xtrc_runtime.data import counts_of
                from xtrc_runtime.dual import mewslix_pairs

                examples, counts = counts_of(mewslix_pairs(self.where), limit)
            else:
                examples, counts = load_counted(task, language, split, self.where, limit)  # type: ignore[arg-type]
        except DataError as exc:
            raise ConfigError(str(exc)) from exc
        if not examples:
            raise ConfigError(f"no {split} examples for {task} ({language})")
        return examples, counts

    def _heads(self, train_tasks: list[str], examples: dict[str, list[Example]], dual: bool) -> dict[str, HeadSpec]:
        def spec(task: str) -> HeadSpec:
            info = tasks.TASKS[task]
            labels = info.labels
            if info.type == "tagging" and not labels:  # CCG: the supertags seen in training
                labels = tuple(sorted({t for e in examples[task] if isinstance(e, TaggingExample) for t in e.tags}))
            return HeadSpec(info.type, labels)

        if dual:
            return {"target": HeadSpec("retrieval")}
        if self.config.kind == "target":  # sequential training data (SIQA → COPA) shares one head
            return {"target": spec(train_tasks[-1])}
        return {task: spec(task) for task in train_tasks}

    def _phases(self, train_tasks: list[str], examples: dict[str, list[Example]], heads: dict[str, HeadSpec],
                tokenizer: Any, seed: int, dual: bool = False) -> tuple[list[list[TrainTask]], dict[str, Any]]:
        """Training phases, with the stage's augmentation applied; and what augmentation did."""
        aug = self.config.augmentation
        stats: dict[str, Any] = {}
        switcher = None
        if aug is not None and aug.code_switch is not None:
            from xtrc_runtime.augment import CodeSwitcher, load_dictionaries

            cfg = aug.code_switch.model_copy(update={"dictionaries": resolve(aug.code_switch.dictionaries)})
            try:
                switcher = CodeSwitcher(cfg, load_dictionaries(cfg.dictionaries, cfg.languages,
                                                               self.where.storage_options or None))
            except ValueError as exc:
                raise ConfigError(f"code_switch: {exc}") from exc

        def task(name: str, head: str, index: int) -> TrainTask:
            english = examples[name]
            added: list[Example] = []
            if aug is not None and aug.translate_train is not None:
                added, stats[f"translate_train.{name}"] = self._translations(name, aug.translate_train, seed)

            def encoded(epoch: int) -> list[Feature]:
                data = english
                if switcher is not None:
                    data, switched = switcher.switch(english, seed=seed * 100 + index, epoch=epoch)
                    if epoch == 0:
                        stats[f"code_switch.{name}"] = {**switched, "dynamic": switcher.config.dynamic}
                data = [*data, *added]
                if dual:  # SQuAD examples (switched as QA, so answers stay aligned) → answer-sentence pairs
                    from xtrc_runtime.dual import squad_pairs

                    data = squad_pairs(data)
                return _tokenized(name, lambda: encode(data, tokenizer, self.hp.max_seq_length,
                                                       labels=heads[head].labels, doc_stride=self.hp.doc_stride,
                                                       max_query_len=self.hp.max_query_length))

            dynamic = switcher is not None and switcher.config.dynamic
            return TrainTask(name, head, encoded(0), cap=self.config.multitask_cap,
                             resample=encoded if dynamic else None)

        if self.config.kind == "target":
            phases = [[task(name, "target", i)] for i, name in enumerate(train_tasks)]
        else:
            phases = [[task(name, name, i) for i, name in enumerate(train_tasks)]]
        for key, value in stats.items():
            log.info("augmentation %s: %s", key, json.dumps(value, sort_keys=True))
        return phases, stats

    def _translations(self, train_task: str, cfg: Any, seed: int) -> tuple[list[Example], dict[str, Any]]:
        """Translate-train data for the task this stage trains on (found under the target task
        it serves, e.g. XNLI's translations of MNLI)."""
        from xtrc_runtime.augment import load_translations

        candidates = [e.task for e in self.config.eval_tasks] or [train_task]
        target = next((t for t in candidates if t in cfg.paths or tasks.TASKS[t].translations is not None),
                      candidates[0])
        try:
            return load_translations(target, train_task, cfg, self.where, seed=seed)
        except (DataError, ValueError) as exc:
            raise ConfigError(f"translate_train: {exc}") from exc

    def _dev_scorer(self, model: TaskModel, tokenizer: Any, train_tasks: list[str],
                    heads: dict[str, HeadSpec]) -> Callable[[int], float | None]:
        """The headline metric on English dev data. A target stage trains one task per phase and
        selects on the target's own English dev set in its last phase, when there is one
        (XTREME), else on the phase's training task (:func:`xtrc.protocol.selection_task`), all of
        it; an intermediate stage mixes its tasks in one phase and selects on the mean over their
        first 500 dev examples (jiant)."""
        target = self.config.kind == "target"
        evals = [e.task for e in self.config.eval_tasks]
        per_phase = ([[protocol.selection_task(evals, t, i == len(train_tasks) - 1)] for i, t in enumerate(train_tasks)]
                     if target else [train_tasks])
        dev: dict[str, list[Example]] = {}
        for name in {n for names in per_phase for n in names}:
            try:
                dev[name] = load(name, "en", "dev", self.where, None if target else 500)
            except DataError:
                log.info("%s has no English dev set: no model selection on it", name)
        if target:
            log.info("selection: best English dev score of %s", " then ".join(p[0] for p in per_phase))

        def score(phase: int) -> float | None:
            values = []
            for name in per_phase[phase] if target else per_phase[0]:
                if name not in dev:
                    continue
                head = "target" if target else name
                result = self._score(model, head, name, "en", dev[name], tokenizer, heads[head].labels)
                values.append(headline(name, result.metrics))
            return sum(values) / len(values) if values else None
        return score

    def _score(self, model: TaskModel, head: str, task: str, language: str, examples: list[Example],
               tokenizer: Any, labels: tuple[str, ...]) -> Result:
        return evaluate(model, head, task, language, examples, tokenizer, max_len=self.hp.max_seq_length,
                        doc_stride=self.hp.doc_stride, batch_size=self.hp.batch_size * 2, device=self.device,
                        labels=labels, autocast=self.autocast, max_query_len=self.hp.max_query_length)

    # --- evaluation ------------------------------------------------------------------------
    def _evaluate_targets(self, model: TaskModel, tokenizer: Any, head: str,
                          heads: dict[str, HeadSpec]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if heads[head].type == "retrieval":  # a trained dual encoder: rank with its head
            return self._evaluate_retrieval(model, tokenizer, head)
        progress = _EvalProgress(self.store, self.config.eval_tasks)
        for ev in self.config.eval_tasks:
            per_language: dict[str, dict[str, float]] = {}
            counts: dict[str, dict[str, Any]] = {}
            for language in ev.languages:
                progress.start(ev.task, language)
                examples, counts[language] = self._load_counted(ev.task, language, "test", self.hp.max_eval_examples)
                result = self._score(model, head, ev.task, language, examples, tokenizer, heads[head].labels)
                self._write_predictions(ev.task, language, result)
                progress.finished(len(result.records))
                per_language[language] = result.metrics
                log.info("%s %s: %s%s", ev.task, language, _fmt(result.metrics), _fmt_cap(counts[language]))
            out[ev.task] = _task_summary(ev.task, per_language, counts)
        progress.end()
        return out

    def _evaluate_retrieval(self, model: TaskModel, tokenizer: Any, head: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        progress = _EvalProgress(self.store, self.config.eval_tasks)
        for ev in self.config.eval_tasks:
            per_language: dict[str, dict[str, float]] = {}
            counts: dict[str, dict[str, Any]] = {}
            for language in ev.languages:
                progress.start(ev.task, language)
                try:
                    result = retrieval.run(ev.task, language, self.where, model, tokenizer,
                                           max_len=self.hp.max_seq_length, batch_size=self.hp.batch_size * 2,
                                           device=self.device, limit=self.hp.max_eval_examples,
                                           languages=ev.languages, head=head)
                except DataError as exc:
                    raise ConfigError(str(exc)) from exc
                self._write_predictions(ev.task, language, result)
                progress.finished(len(result.records))
                per_language[language] = result.metrics
                if result.counts is not None:
                    counts[language] = result.counts
                log.info("%s %s: %s%s", ev.task, language, _fmt(result.metrics), _fmt_cap(counts.get(language)))
            out[ev.task] = _task_summary(ev.task, per_language, counts)
        progress.end()
        return out

    def _write_predictions(self, task: str, language: str, result: Result) -> None:
        lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in result.records)
        self.store.write_bytes(f"{PREDICTIONS_DIR}/{task}/{language}.jsonl", lines.encode())


class _ProgressWriter:
    """The trainer's ``on_progress``: ``progress.json`` in the store at most every
    :data:`PROGRESS_SECONDS` (and at the last step of a phase)."""

    def __init__(self, store: StageStore):
        self.store = store
        self.written = 0.0

    def __call__(self, record: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.written < PROGRESS_SECONDS and record["step"] != record["total"]:
            return
        self.written = now
        self.store.write_progress({**record, "state": "training", "updated": time.time()})


PROGRESS_SECONDS = 5.0


class _EvalProgress:
    """``progress.json`` while a stage evaluates: written as each (task, language) starts and once
    all are scored, with the languages done and to do, the examples scored so far and an ETA from
    the time per language so far (one small write per language: nothing next to scoring one)."""

    def __init__(self, store: StageStore, eval_tasks: Any):
        self.store = store
        self.total = sum(len(ev.languages) for ev in eval_tasks)
        self.done = 0
        self.examples = 0
        self.started = time.monotonic()
        self.at = ("", "")

    def start(self, task: str, language: str) -> None:
        self.at = (task, language)
        self._write()

    def finished(self, examples: int) -> None:
        self.done += 1
        self.examples += examples

    def end(self) -> None:
        self._write()

    def _write(self) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        task, language = self.at
        self.store.write_progress({"state": "evaluating", "task": task, "language": language,
                                   "languages_done": self.done, "languages_total": self.total,
                                   "examples": self.examples, "updated": time.time(),
                                   "eta_seconds": None if eta is None else round(eta, 1)})


def _task_summary(task: str, per_language: dict[str, dict[str, float]],
                  counts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``examples``: per language, the source's rows, those dropped and why, those evaluated,
    and the cap (``max_eval_examples``) where it left examples out."""
    info = tasks.TASKS[task]
    # Averaged: the task's metrics present in every language (not run details such as BUCC's threshold).
    common = set.intersection(*(set(m) for m in per_language.values())) & set(info.metrics) if per_language else set()
    average = metrics.language_average({lang: {k: v for k, v in m.items() if k in common}
                                        for lang, m in per_language.items()})
    return {
        "languages": per_language,
        "average": average,
        "headline": headline(task, average),
        "headline_metric": next((m for m in info.metrics if m in average), None),
        "xtreme_score": metrics.task_score(average, info.xtreme_score) if info.xtreme_score else None,
        "examples": counts,
    }


def _task_texts(task: str, language: str, split: str, where: DataLocation) -> list[str]:
    """The text of one split of a task (what a model reads: no ids, no labels)."""
    if task == "lareqa":
        return ([r["question"] for r in read_rows(task, language, split, where, name="questions")]  # type: ignore[arg-type]
                + [r["sentence"] for r in read_rows(task, language, split, where, name="candidates")])  # type: ignore[arg-type]
    if task == "mewslix":
        rows = read_rows(task, language, split, where)  # type: ignore[arg-type]
        entities = read_rows(task, "", split, where, name="entities")  # type: ignore[arg-type]
        return [r["context"] for r in rows] + [f"{e['title']} {e['description']}" for e in entities]
    return [text for e in load(task, language, split, where) for text in example_texts(e)]  # type: ignore[arg-type]


def _tokenized(task: str, make: Callable[[], list[Feature]]) -> list[Feature]:
    """Tokenization is decided by its input and settings alone, so its errors (a Rust panic from
    ``tokenizers`` included, which ``except Exception`` misses) are configuration errors: a retry
    would fail the same way."""
    try:
        return make()
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ConfigError(f"tokenizing {task}: {type(exc).__name__}: {exc}") from exc
    except BaseException as exc:
        if is_rust_panic(exc):
            raise ConfigError(f"tokenizing {task}: the tokenizer panicked (not retried): {exc}") from None
        raise


def _fmt_cap(counts: dict[str, Any] | None) -> str:
    cap = (counts or {}).get("cap")
    if not cap or cap.get("not_applied"):
        return ""
    return f" (on {counts['evaluated']} of {counts['evaluated'] + cap['left_out']}: max_eval_examples)"  # type: ignore[index]


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in values.items())


def _run_info(device: torch.device) -> dict[str, Any]:
    import transformers

    from xtrc.spec import image_digest
    from xtrc.stage import IMAGE_ENV

    info = {"device": str(device), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
    image = os.environ.get(IMAGE_ENV)
    if image:  # a Kubernetes stage: which build ran it
        info["image"] = image
        info["image_digest"] = image_digest(image)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
