"""Arms → a deduplicated DAG of stages with content-addressed keys, plus a GPU-hour estimate."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from xtrc import protocol, tasks
from xtrc.spec import BUILTIN_MODELS, AugmentationLevel, Experiment, IntermediateLevel, TrainingOverrides
from xtrc.stage import Augmentation, EvalTask, Hyperparameters, StageConfig
from xtrc import fingerprint
from xtrc.errors import XtrcError
from xtrc.fingerprint import Fingerprinter
from xtrc.revisions import Revisions, pin_name
from xtrc.store import normalize_uri

BUILTIN_TINY = BUILTIN_MODELS[0]

_RECIPE_FIELDS = ("learning_rate", "epochs", "batch_size", "grad_accum", "max_seq_length",
                  "warmup_ratio", "weight_decay", "doc_stride", "max_query_length")
_RETRIEVAL_FIELDS = ("max_seq_length", "max_eval_examples", "precision", "batch_size")
RETRIEVAL_MAX_SEQ_LENGTH = 512  # XTREME's retrieval scripts and jiant both embed up to 512 subwords

MODEL_PARAMS = {
    "facebookai/xlm-roberta-large": 560_000_000,
    "xlm-roberta-large": 560_000_000,
    "facebookai/xlm-roberta-base": 278_000_000,
    "xlm-roberta-base": 278_000_000,
    "google-bert/bert-base-multilingual-cased": 178_000_000,
    "bert-base-multilingual-cased": 178_000_000,
    "builtin:tiny-xlmr": 1_000_000,
}
DEFAULT_MODEL_PARAMS = 560_000_000  # unknown models are estimated as XLM-R large


@dataclass(frozen=True)
class Arm:
    name: str
    intermediate: IntermediateLevel
    augmentation: AugmentationLevel

    @property
    def is_baseline(self) -> bool:
        return self.intermediate.is_none and self.augmentation.is_none


@dataclass
class Plan:
    experiment: Experiment
    arms: list[Arm]
    stages: dict[str, StageConfig]
    """Key → config, upstream stages before their dependants."""
    cells: dict[tuple[str, int, str], str]
    """(arm, seed, target task) → key of the stage whose metrics hold that cell."""
    arms_by_stage: dict[str, list[str]] = field(default_factory=dict)
    naive_stage_count: int = 0
    """Stages a per-arm pipeline without sharing would run (one per arm × seed × target, plus intermediates)."""
    unlisted: list[str] = field(default_factory=list)
    """Data that could not be listed to fingerprint it: the keys are provisional (see xtrc.fingerprint)."""
    revisions: Revisions | None = None
    """The hub revisions the keys use (None without fingerprints); see xtrc.revisions."""

    @property
    def unresolved(self) -> list[str]:
        """Hub inputs whose commit is not known (offline, or the hub refused): provisional keys."""
        return self.revisions.problems() if self.revisions is not None else []

    def require_fingerprints(self) -> None:
        """Refuse provisional keys: running under them could train a stage twice or mix data."""
        if self.unlisted:
            raise XtrcError("cannot run with provisional stage keys: " + "; ".join(self.unlisted))
        if self.unresolved:
            raise XtrcError(
                "cannot run: the commit of these hub inputs is not known, so their stages have no stable key:\n  "
                + "\n  ".join(self.unresolved) + "\nresolve them once with the hub reachable (xtrc plan SPEC pins "
                "them in the store), or pin a commit sha in the spec (model_revision, data.revisions), or read "
                "the data from a path (data.root, data.tasks.<task>.path)")

    def count_by_kind(self, keys: set[str] | None = None) -> dict[str, int]:
        counts = {"intermediate": 0, "target": 0, "retrieval": 0}
        for key, stage in self.stages.items():
            if keys is None or key in keys:
                counts[stage.kind] += 1
        return counts

    @property
    def baseline(self) -> Arm | None:
        return next((arm for arm in self.arms if arm.is_baseline), None)

    def gpu_hours(self, key: str) -> float:
        return estimate_gpu_hours(self.stages[key], self.experiment)


def expand_arms(exp: Experiment) -> list[Arm]:
    inter = {level.name: level for level in exp.factors.intermediate}
    aug = {level.name: level for level in exp.factors.augmentation}
    if exp.design == "arms" and exp.arms:
        pairs = [(a.name, inter[a.intermediate], aug[a.augmentation]) for a in exp.arms]
    else:
        pairs = [(None, i, a) for i, a in itertools.product(exp.factors.intermediate, exp.factors.augmentation)]
    return [Arm(name or f"{i.name}+{a.name}", i, a) for name, i, a in pairs]


def build(exp: Experiment, *, fingerprint: bool = True, revisions: Revisions | None = None) -> Plan:
    """The plan of ``exp``. ``fingerprint=False`` leaves the data out of the keys (no listing:
    for `xtrc validate`, which shows counts only); every command that uses keys fingerprints.
    ``revisions`` holds the store's pinned hub revisions (xtrc.revisions); without it every hub
    revision not pinned in the spec is resolved now."""
    store = normalize_uri(exp.storage.uri)
    fingerprinter = Fingerprinter(store, dict(exp.storage.options)) if fingerprint else None
    if fingerprint and revisions is None:
        revisions = Revisions.from_env(pins=dict(exp.data.revisions), model_revision=exp.model_revision,
                                       hub_endpoint=exp.hub.endpoint)
    common: dict[str, Any] = {
        "model": exp.model,
        "salt": exp.salt,
        "data_root": exp.data.root,
        "store": store,
        "storage_options": dict(exp.storage.options),
    }
    plan = Plan(exp, expand_arms(exp), {}, {}, revisions=revisions if fingerprint else None)
    proto = protocol.PROTOCOLS[exp.benchmark]
    trained = [t for t in exp.target_tasks if proto[t].stage == "target"]
    retrieval = [t for t in exp.target_tasks if proto[t].stage == "retrieval"]
    base_corpus = {"tokenizer_corpus": tokenizer_corpus(exp)} if exp.model == BUILTIN_TINY else {}
    target_hparams = {t: _resolve(exp, t) for t in trained}
    # Retrieval targets scored from "the SQuAD model" start from the arm's SQuAD target stage:
    # the XQuAD/MLQA stage when it is planned with these settings, else a stage of its own.
    needs_squad = any(proto[t].init == "squad" for t in retrieval)
    squad_hparams = _resolve(exp, "xquad")
    languages = {t: _languages(exp, t) for t in exp.target_tasks}
    data_by_names: dict[tuple[str, ...], dict] = {}

    def data_for(names: tuple[str, ...]) -> dict:
        if names not in data_by_names:
            data_by_names[names] = _data_for(exp, names)
        return data_by_names[names]

    users: set[tuple[str, str]] = set()  # (stage key, arm): a list membership test here made plan quadratic

    def add(config: StageConfig, arm: Arm) -> str:
        if fingerprinter is not None and revisions is not None:
            config = config.model_copy(update=_fingerprint(fingerprinter, revisions, exp, config))
        config = config.with_key()
        plan.stages.setdefault(config.key, config)
        if (config.key, arm.name) not in users:
            users.add((config.key, arm.name))
            plan.arms_by_stage.setdefault(config.key, []).append(arm.name)
        return config.key

    for arm, seed in itertools.product(plan.arms, exp.seeds):
        init_from = None
        if not arm.intermediate.is_none:
            level = arm.intermediate
            plan.naive_stage_count += 1
            init_from = add(StageConfig(
                kind="intermediate",
                train_tasks=tuple(level.task_names),
                hparams=_resolve_intermediate(exp, level),
                multitask_cap=level.sampling.cap if len(level.task_names) > 1 else None,
                augmentation=_augmentation(arm.augmentation, "intermediate"),
                data=data_for(tuple(level.task_names)),
                seed=seed,
                **base_corpus,
                **common,
            ), arm)

        # Targets trained on the same English data with the same settings, objective and
        # augmentation share one stage (XQuAD and MLQA both train on SQuAD v1.1): train once,
        # evaluate every such target. LAReQA also trains on SQuAD, but as a dual encoder.
        squad_aug = _augmentation(arm.augmentation, "target", proto["xquad"].augment)
        groups: dict[tuple[Any, ...], list[str]] = {}
        augmentations: dict[str, Augmentation | None] = {}
        for task in trained:
            p = proto[task]
            aug = _augmentation(arm.augmentation, "target", p.augment)
            aug_id = aug.model_dump_json() if aug else ""
            augmentations[aug_id] = aug
            groups.setdefault((p.train_on, target_hparams[task], p.objective, aug_id), []).append(task)
        squad_key = None
        for (train_tasks, hparams, objective, aug_id), evals in groups.items():
            aug = augmentations[aug_id]
            plan.naive_stage_count += len(evals)
            feeds = (needs_squad and squad_key is None and objective == "task" and train_tasks == (protocol.SQUAD_TASK,)
                     and hparams == squad_hparams and aug == squad_aug)
            key = add(StageConfig(
                kind="target",
                init_from=init_from,
                train_tasks=train_tasks,
                eval_tasks=tuple(EvalTask(task=t, languages=languages[t]) for t in evals),
                hparams=hparams,
                save_model=feeds,
                augmentation=aug,
                data=data_for((*train_tasks, *evals)),
                seed=seed,
                **({} if init_from else base_corpus),
                **common,
            ), arm)
            if feeds:
                squad_key = key
            for task in evals:
                plan.cells[(arm.name, seed, task)] = key
        if needs_squad and squad_key is None:
            # No planned XQuAD/MLQA stage to reuse. Translate-train data is registered per target
            # task, so this stage takes the arm's code-switching only.
            plan.naive_stage_count += 1
            squad_key = add(StageConfig(
                kind="target",
                init_from=init_from,
                train_tasks=(protocol.SQUAD_TASK,),
                hparams=squad_hparams,
                save_model=True,
                augmentation=_augmentation(arm.augmentation, "target", frozenset({"code_switch"})),
                data=_data_for(exp, (protocol.SQUAD_TASK,)),
                seed=seed,
                **({} if init_from else base_corpus),
                **common,
            ), arm)

        for task in retrieval:
            plan.naive_stage_count += 1
            full = _resolve(exp, task)
            hparams = Hyperparameters(**{f: getattr(full, f) for f in _RETRIEVAL_FIELDS})
            upstream = squad_key if proto[task].init == "squad" else init_from
            plan.cells[(arm.name, seed, task)] = add(StageConfig(
                kind="retrieval",
                init_from=upstream,
                eval_tasks=(EvalTask(task=task, languages=languages[task]),),
                hparams=hparams,
                data=data_for((task,)),
                seed=None,  # no training: the output depends only on the checkpoint
                **({} if upstream else base_corpus),
                **common,
            ), arm)
    if fingerprinter is not None:
        plan.unlisted = list(fingerprinter.unlisted)
    return plan


def _fingerprint(fp: Fingerprinter, revs: Revisions, exp: Experiment, stage: StageConfig) -> dict[str, Any]:
    """What ``stage`` reads, by content (see xtrc.fingerprint): its tasks' data in the languages
    it reads them, translations, dictionaries and the model; and the hub commits it reads."""
    pinned: dict[str, str] = {}

    def hub_data(sources: list[tuple[tasks.HFSource, str | None]]) -> str:
        parts = set()
        for source, config in sources:
            sha = revs.dataset(source.dataset, source.revision)
            if sha is not None:
                pinned[pin_name("dataset", source.dataset, source.revision)] = sha
            parts.add(fingerprint.hub("dataset", source.dataset, config, source.revision, sha))
        return " ".join(sorted(parts))

    reads: dict[str, set[str]] = {}
    for task in stage.train_tasks:
        reads.setdefault(task, set()).add("en")
    for ev in stage.eval_tasks:
        reads.setdefault(ev.task, set()).update(ev.languages)
    for task, language, _ in stage.tokenizer_corpus:
        reads.setdefault(task, set()).add(language)
    out: dict[str, str] = {}
    aug = stage.augmentation
    if aug is not None and aug.translate_train is not None:
        tt = aug.translate_train
        for ev in stage.eval_tasks or ():
            if ev.task in tt.paths:
                out[f"translate_train.{ev.task}"] = fp.under(tt.paths[ev.task], [""], f"translate_train.paths.{ev.task}")
            else:
                reads.setdefault(ev.task, set()).update(tt.languages)
                translations = tasks.TASKS[ev.task].translations
                if exp.data.root is None and exp.data.tasks.get(ev.task) is None and translations and translations.source:
                    source = translations.source
                    out[f"translate_train.{ev.task}"] = hub_data(
                        [(source, source.config_for(lang)) for lang in tt.languages])
    for task, languages in sorted(reads.items()):
        source = exp.data.tasks.get(task)
        if source is not None:
            out[f"data.{task}"] = fp.under(source.path, sorted(languages), f"data.tasks.{task}.path")
        elif exp.data.root is not None:
            out[f"data.{task}"] = fp.under(exp.data.root, [f"{task}/{lang}" for lang in sorted(languages)], "data.root")
        else:
            info = tasks.TASKS[task]
            sources = [(s, s.config_for(lang)) for lang in sorted(languages) if (s := info.source_for(lang))]
            out[f"data.{task}"] = hub_data(sources) if sources else "no source"
    if aug is not None and aug.code_switch is not None:
        cs = aug.code_switch
        out["dictionaries"] = fp.under(cs.dictionaries, [f"en-{lang}.txt" for lang in cs.languages]
                                       if not cs.dictionaries.endswith(".txt") else [""], "code_switch.dictionaries")
    model_sha = None
    if stage.init_from is None and stage.model != BUILTIN_TINY:
        if "://" in stage.model:
            out["model"] = fp.under(stage.model, [""], "model")
        else:
            model_sha = revs.model(stage.model)
            out["model"] = fingerprint.hub("model", stage.model, None, exp.model_revision, model_sha)
    # sorted as StageConfig sorts them when read back (model_copy does not)
    return {"data_fingerprint": dict(sorted(out.items())), "hub_revisions": dict(sorted(pinned.items())),
            "model_revision": model_sha}


def tokenizer_corpus(exp: Experiment) -> tuple[tuple[str, str, str], ...]:
    """The text the built-in model's tokenizer learns from: every English training and dev set
    the experiment trains on, and every test set it evaluates, in the experiment's languages.
    One corpus for the whole experiment, so every arm starts from the same base model."""
    parts: list[tuple[str, str, str]] = []
    proto = protocol.PROTOCOLS[exp.benchmark]
    training = [t for level in exp.factors.intermediate for t in level.task_names]
    training += [t for target in exp.target_tasks for t in proto[target].train_on]
    if any(proto[t].init == "squad" for t in exp.target_tasks):
        training.append(protocol.SQUAD_TASK)
    for task in dict.fromkeys(training):
        parts += [(task, "en", "train"), (task, "en", "dev")]
    for task in exp.target_tasks:
        parts += [(task, language, "test") for language in _languages(exp, task)]
    return tuple(dict.fromkeys(parts))


def _languages(exp: Experiment, task: str) -> tuple[str, ...]:
    chosen = exp.languages.get(task)
    all_languages = tasks.TASKS[task].languages_for(exp.benchmark)
    return tuple(lang for lang in all_languages if chosen is None or lang in chosen)


def _augmentation(level: AugmentationLevel, kind: str, methods: frozenset[str] | None = None) -> Augmentation | None:
    """The level's augmentation for a stage of ``kind``, limited to ``methods`` (the protocol's
    methods for the target) when given."""
    if not level.applies_to(kind):
        return None
    code_switch = level.code_switch if methods is None or "code_switch" in methods else None
    translate_train = level.translate_train if methods is None or "translate_train" in methods else None
    if code_switch is None and translate_train is None:
        return None
    return Augmentation(level=level.name, code_switch=code_switch, translate_train=translate_train)


def _data_for(exp: Experiment, names: Any) -> dict:
    wanted = set()
    for name in names:
        wanted.add(name)
        wanted.update(tasks.TASKS[name].train_on)
    return {name: source for name, source in exp.data.tasks.items() if name in wanted}


def _overrides(*layers: TrainingOverrides | dict[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        values = layer if isinstance(layer, dict) else layer.model_dump(exclude_none=True)
        merged.update(values)
    return merged


def _recipe(task: str) -> dict[str, Any]:
    recipe = tasks.TASKS[task].recipe
    if recipe is None:
        return {}
    return {f: getattr(recipe, f) for f in _RECIPE_FIELDS if getattr(recipe, f) is not None}


def _resolve(exp: Experiment, task: str) -> Hyperparameters:
    """base < the task's length grouping < recipe[task] and the protocol's selection <
    training.defaults < training.tasks[task]."""
    recipe = _recipe(task) if exp.training.recipe == "xtreme" else {}
    target = protocol.PROTOCOLS[exp.benchmark].get(task)
    if target is not None and target.stage == "retrieval":
        recipe = {"max_seq_length": RETRIEVAL_MAX_SEQ_LENGTH}
    elif target is not None:
        recipe = {**recipe, "selection": target.selection}
    recipe = {"group_by_length": tasks.TASKS[task].group_by_length, **recipe}
    return Hyperparameters(**_overrides(recipe, exp.training.defaults, exp.training.tasks.get(task)))


# Several intermediate tasks in one stage: a setting the tasks disagree on is combined thus
# (conservative: the smallest learning rate, the longest sequences); any other disagreement takes
# the first task's value.
_COMBINE: dict[str, Any] = {
    "learning_rate": min, "epochs": min, "max_seq_length": max, "doc_stride": max,
    "max_query_length": max, "warmup_ratio": max, "weight_decay": min,
}


def _resolve_intermediate(exp: Experiment, level: IntermediateLevel) -> Hyperparameters:
    """Every task resolved by the single-task rule (:func:`_resolve`), the results combined by
    :data:`_COMBINE` where they differ, then level.training on top."""
    resolved = [_resolve(exp, name).model_dump() for name in level.task_names]
    merged: dict[str, Any] = {}
    for name in Hyperparameters.model_fields:
        values = [r[name] for r in resolved]
        same = all(v == values[0] for v in values)
        merged[name] = values[0] if same or name not in _COMBINE else _COMBINE[name](values)
    return Hyperparameters(**_overrides(merged, level.training))


# --- the GPU-hour estimate ---------------------------------------------------------------


def model_params(exp: Experiment) -> int:
    if exp.compute.estimate.model_params:
        return exp.compute.estimate.model_params
    return MODEL_PARAMS.get(exp.model.lower(), DEFAULT_MODEL_PARAMS)


def estimate_gpu_hours(stage: StageConfig, exp: Experiment) -> float:
    """FLOPs over real tokens → GPU-hours.

    train FLOPs = 6 · params · Σ(examples · epochs · min(max_seq_length, mean_tokens));
    eval FLOPs = 2 · params · Σ(languages · test examples · tokens); time = FLOPs / (peak · MFU),
    plus a fixed per-stage overhead on each of the stage's GPUs. Sizes come from the task
    registry (approximate); translate-train adds ``ratio`` of the English set per language.
    """
    est = exp.compute.estimate
    hp = stage.hparams
    params = model_params(exp)
    train_tokens = 0.0
    for name in stage.train_tasks:
        info = tasks.TASKS[name]
        examples = float(info.sizes.train)
        if stage.multitask_cap:
            examples = min(examples, stage.multitask_cap)
        if hp.max_train_examples:
            examples = min(examples, hp.max_train_examples)
        if stage.augmentation and stage.augmentation.translate_train:
            tt = stage.augmentation.translate_train
            examples *= 1 + tt.ratio * len(tt.languages)
        tokens = min(hp.max_seq_length, info.mean_tokens)
        train_tokens += examples * hp.epochs * tokens
    if hp.max_steps and stage.train_tasks:
        train_tokens = min(train_tokens, hp.max_steps * hp.batch_size * hp.grad_accum * hp.max_seq_length)
    eval_tokens = 0.0
    for ev in stage.eval_tasks:
        info = tasks.TASKS[ev.task]
        per_language = info.sizes.test_per_language
        if hp.max_eval_examples:
            per_language = min(per_language, hp.max_eval_examples)
        eval_tokens += len(ev.languages) * per_language * min(hp.max_seq_length, info.mean_tokens)
    flops = 6 * params * train_tokens + 2 * params * eval_tokens
    gpus = exp.compute.gpus
    if gpus == 0:
        return 0.0
    compute_hours = flops / (est.gpu_tflops * 1e12 * est.mfu) / 3600
    return compute_hours + gpus * est.stage_overhead_minutes / 60


def build_pinned(exp: Experiment, store: Any | None, *, refresh: bool = False) -> Plan:
    """The plan of ``exp`` with its hub revisions pinned in ``store`` (xtrc.revisions): the
    lock's shas where it has them, the rest resolved now and added to it. ``refresh`` resolves
    every one again; without a store the lock is neither read nor written."""
    from xtrc.revisions import read_lock, write_lock
    revisions = Revisions.from_env(pins=dict(exp.data.revisions), model_revision=exp.model_revision,
                                   hub_endpoint=exp.hub.endpoint, refresh=refresh,
                                   lock_reader=(lambda: read_lock(store, exp.metadata.name)) if store else None)
    plan = build(exp, revisions=revisions)
    if store is not None and revisions.fresh:
        try:
            write_lock(store, exp.metadata.name, revisions)
        except Exception as exc:  # any store failure: the plan stands, its revisions are not pinned
            revisions.lock_problem = f"cannot write the revisions lock ({type(exc).__name__}: {exc})"
    return plan
