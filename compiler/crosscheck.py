"""The rules of an experiment spec that span fields, and the advisories (allowed but risky). Each
problem comes with the field to change, as written; :mod:`xtrc.loader` turns it into
FILE:LINE:COL."""

from __future__ import annotations

import difflib

from xtrc import tasks
from xtrc.spec import BUILTIN_MODELS, MAX_ARMS, MAX_STAGES, Experiment, image_warning
from xtrc.yamlsafe import Loc


def _members(written: list[str]) -> list[tuple[int, str]]:
    """(index as written, task) for a task list whose items may be groups."""
    return [(j, task) for j, name in enumerate(written) for task in tasks.expand([name])]


def advisories(exp: Experiment) -> list[tuple[Loc, str]]:
    """What is allowed but risky; validate prints these as warnings (exit 0)."""
    warning = image_warning(exp.image)
    return [(("image",), warning)] if warning else []


def cross_check(exp: Experiment) -> list[tuple[Loc, str]]:
    """Rules that span fields; each problem comes with the field to change (as written)."""
    problems: list[tuple[Loc, str]] = []
    levels = {"intermediate": exp.factors.intermediate, "augmentation": exp.factors.augmentation}
    for factor, items in levels.items():
        seen: dict[str, int] = {}
        for i, level in enumerate(items):
            if level.name in seen:
                problems.append((("factors", factor, i, "name"),
                                 f"level name '{level.name}' repeats level {seen[level.name]}; names must be unique"))
            seen[level.name] = i

    for i, level in enumerate(exp.factors.intermediate):
        if level.name == "none" and level.tasks:
            problems.append((("factors", "intermediate", i, "name"), "the level named 'none' must have no tasks"))
        if not level.tasks and level.name != "none":
            problems.append((("factors", "intermediate", i, "tasks"),
                             f"level '{level.name}' has no tasks; list tasks or name it 'none'"))
        for j, task in _members(level.tasks):
            if not ({"intermediate", "source"} & tasks.TASKS[task].roles):
                problems.append((("factors", "intermediate", i, "tasks", j),
                                 f"'{task}' is a target task, not an intermediate task; intermediate tasks: "
                                 + ", ".join(tasks.GROUPS["phang2020"])))
    for i, level in enumerate(exp.factors.augmentation):
        if level.name == "none" and not level.is_none:
            problems.append((("factors", "augmentation", i, "name"), "the level named 'none' must have no methods"))
        if level.is_none and level.name != "none":
            problems.append((("factors", "augmentation", i),
                             f"level '{level.name}' has no method; add code_switch or translate_train, "
                             "or name it 'none'"))

    for j, task in _members(exp.targets):
        if "target" not in tasks.TASKS[task].roles:
            problems.append((("targets", j), f"'{task}' is not a target task; targets: "
                             + ", ".join(tasks.GROUPS["xtreme-r"]) + ", pawsx, bucc"))

    if exp.arms is not None and exp.design != "arms":
        where = ("design",) if "design" in exp.model_fields_set else ("arms",)
        problems.append((where, "arms: is given, so set design: arms (or remove arms: for a factorial design)"))
    if exp.design == "arms" and not exp.arms:
        problems.append((("arms",), "design: arms needs a non-empty arms: list"))
    if exp.design == "arms" and exp.arms:
        names = {f: {lv.name for lv in items} for f, items in levels.items()}
        for i, arm in enumerate(exp.arms):
            for factor in ("intermediate", "augmentation"):
                ref = getattr(arm, factor)
                if ref not in names[factor]:
                    close = difflib.get_close_matches(ref, sorted(names[factor]), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else f"; levels: {', '.join(sorted(names[factor]))}"
                    problems.append((("arms", i, factor), f"no {factor} level named '{ref}'{hint}"))

    targets = exp.target_tasks
    arm_count = len(exp.arms or []) if exp.design == "arms" else (
        len(exp.factors.intermediate) * len(exp.factors.augmentation))
    if arm_count > MAX_ARMS:
        problems.append((("factors",), f"the design has {arm_count} arms, more than the limit of {MAX_ARMS}"))
    naive_stages = arm_count * len(exp.seeds) * (len(targets) + 1)
    if naive_stages > MAX_STAGES:
        problems.append((("factors",), f"{arm_count} arms x {len(exp.seeds)} seeds x {len(targets)} targets "
                                       f"may need up to {naive_stages} stages, more than the limit of {MAX_STAGES}"))

    for task, langs in exp.languages.items():
        known = tasks.TASKS[task].languages_for(exp.benchmark)
        for j, lang in enumerate(langs):
            if lang not in known:
                problems.append((("languages", task, j), f"'{task}' has no language '{lang}' in {exp.benchmark}; "
                                                          f"its languages: {' '.join(known)}"))

    if exp.model_revision != "main" and (exp.model in BUILTIN_MODELS or "://" in exp.model):
        problems.append((("model_revision",), f"'{exp.model}' is not a hub model, so it has no revision; "
                                              "remove model_revision"))
    known_datasets = tasks.hub_datasets()
    for ref in exp.data.revisions:
        repo = ref.split("@", 1)[0]
        if repo not in known_datasets:
            close = difflib.get_close_matches(repo, sorted(known_datasets), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; it must be a dataset of the task registry"
            problems.append((("data", "revisions", ref), f"no task reads the hub dataset '{repo}'{hint}"))
        elif "@" in ref and ref.split("@", 1)[1] not in known_datasets[repo]:
            problems.append((("data", "revisions", ref), f"the registry reads '{repo}' at "
                             f"{', '.join(sorted(known_datasets[repo]))}, not {ref.split('@', 1)[1]}; "
                             f"write '{repo}' or '{repo}@<one of those>'"))

    # Tasks without a public source need a data path.
    used: dict[str, Loc] = {}
    for j, task in _members(exp.targets):
        for name in (task, *tasks.TASKS[task].train_on):
            used.setdefault(name, ("targets", j))
    for i, level in enumerate(exp.factors.intermediate):
        for j, task in _members(level.tasks):
            used.setdefault(task, ("factors", "intermediate", i, "tasks", j))
    for task, loc in used.items():
        if tasks.TASKS[task].needs_data_path and not exp.data.has_path(task):
            problems.append((loc, f"'{task}' has no public data source ({tasks.TASKS[task].notes or 'none'}); "
                                  f"set data.tasks.{task}.path (or data.root) to your copy"))

    # translate-train needs translations for every trained target it applies to.
    trained_targets = [t for t in targets if tasks.TASKS[t].trains]
    for i, level in enumerate(exp.factors.augmentation):
        tt = level.translate_train
        if tt is None or level.apply_to == "intermediate":
            continue
        for task in trained_targets:
            if task in tt.paths:
                continue
            info = tasks.TASKS[task].translations
            if info is None or info.source is None:
                why = "no public translate-train data exists" if info is None else (
                    f"its translations ({info.description}) are not on the hub")
                problems.append((("factors", "augmentation", i, "translate_train"),
                                 f"target '{task}': {why}; add translate_train.paths.{task} "
                                 f"or use this level only in arms without '{task}'"))
                continue
            missing = [lang for lang in tt.languages if lang not in info.languages]
            if missing:
                problems.append((("factors", "augmentation", i, "translate_train", "languages"),
                                 f"target '{task}' has translations only for {', '.join(info.languages)}; "
                                 f"not for {', '.join(missing)} (or give translate_train.paths.{task})"))
    return problems
