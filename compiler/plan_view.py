"""What `xtrc plan` shows: the same facts as a dict (--json) and as rich tables."""

from __future__ import annotations

from typing import Any

from xtrc.plan import Plan, model_params

KINDS = ("intermediate", "target", "retrieval")


def plan_summary(plan: Plan, done: set[str] | None) -> dict[str, Any]:
    """``done`` is None when the store was not read."""
    store_read = done is not None
    done = done or set()
    exp = plan.experiment
    hours = {key: plan.gpu_hours(key) for key in plan.stages}
    todo = set(plan.stages) - done
    est = exp.compute.estimate
    return {
        "experiment": exp.metadata.name,
        "store": next(iter(plan.stages.values())).store if plan.stages else exp.storage.uri,
        "arms": [
            {"name": a.name, "intermediate": a.intermediate.name, "augmentation": a.augmentation.name,
             "baseline": a.is_baseline}
            for a in plan.arms
        ],
        "seeds": list(exp.seeds),
        "targets": exp.target_tasks,
        "stages": {
            "total": len(plan.stages),
            "by_kind": plan.count_by_kind(),
            "done": len(done) if store_read else None,
            "to_run": len(todo),
            "to_run_by_kind": plan.count_by_kind(todo),
            "naive_per_arm": plan.naive_stage_count,
        },
        "gpu_hours": {
            "total": round(sum(hours.values()), 2),
            "remaining": round(sum(hours[k] for k in todo), 2),
            "assumptions": {
                "model_params": model_params(exp),
                "gpu_tflops": est.gpu_tflops,
                "mfu": est.mfu,
                "stage_overhead_minutes": est.stage_overhead_minutes,
                "gpus_per_stage": exp.compute.gpus,
            },
        },
        "hub_revisions": plan.revisions.summary() if plan.revisions is not None else None,
        "dag": [
            {
                "key": key,
                "kind": stage.kind,
                "train_tasks": list(stage.train_tasks),
                "eval_tasks": [e.task for e in stage.eval_tasks],
                "seed": stage.seed,
                "upstream": list(stage.upstream),
                "arms": plan.arms_by_stage.get(key, []),
                "done": key in done,
                "gpu_hours": round(hours[key], 3),
            }
            for key, stage in plan.stages.items()
        ],
    }


def print_plan(plan: Plan, done: set[str] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    summary = plan_summary(plan, done)
    done = done or set()
    exp = plan.experiment
    console = Console()
    console.print(f"[bold]{exp.metadata.name}[/]: {len(plan.arms)} arms x {len(exp.seeds)} seeds x "
                  f"{len(exp.target_tasks)} targets ({', '.join(exp.target_tasks)}); model {exp.model}")

    arms = Table(title="Arms")
    for column in ("arm", "intermediate", "augmentation", ""):
        arms.add_column(column)
    for arm in summary["arms"]:
        arms.add_row(arm["name"], arm["intermediate"], arm["augmentation"], "baseline" if arm["baseline"] else "")
    console.print(arms)

    stages = summary["stages"]
    hours = {row["key"]: row["gpu_hours"] for row in summary["dag"]}
    table = Table(title="Stages")
    for column in ("kind", "in plan", "done", "to run", "GPU-h to run"):
        table.add_column(column, justify="right" if column != "kind" else "left")
    for kind in KINDS:
        keys = [k for k, s in plan.stages.items() if s.kind == kind]
        todo = [k for k in keys if k not in done]
        table.add_row(kind, str(len(keys)), str(len(keys) - len(todo)), str(len(todo)),
                      f"{sum(hours[k] for k in todo):.1f}")
    table.add_row("[bold]total", str(stages["total"]), str(stages["done"] or 0), str(stages["to_run"]),
                  f"[bold]{summary['gpu_hours']['remaining']:.1f}")
    console.print(table)

    naive = stages["naive_per_arm"]
    saved = naive - stages["total"]
    console.print(f"A per-arm pipeline would run {naive} stages; shared stages cut that to {stages['total']} "
                  f"({saved} fewer, {100 * saved / naive if naive else 0:.0f}%).")
    a = summary["gpu_hours"]["assumptions"]
    console.print(f"GPU-hours: {summary['gpu_hours']['total']:.1f} in all, {summary['gpu_hours']['remaining']:.1f} "
                  f"to run; estimated from FLOPs over real tokens (6·{a['model_params'] / 1e6:.0f}M params per "
                  f"token trained) at {a['mfu']:.0%} of {a['gpu_tflops']:.0f} TFLOP/s, "
                  f"plus {a['stage_overhead_minutes']:.0f} min per stage per GPU.")
    if plan.baseline is None:
        console.print("[yellow]note:[/] no arm has neither intermediate training nor augmentation; "
                      "the report will have no baseline to compare against.")
    console.print(f"Store: {summary['store']}")
    revisions = plan.revisions
    if revisions is not None and (revisions.used or revisions.problems()):
        from xtrc.revisions import LOCK_FILE

        now = f", {len(revisions.resolved_now)} resolved now" if revisions.resolved_now else ""
        inputs = len(revisions.used) + len(revisions.unresolved) + len(revisions.refused)
        console.print(f"Hub revisions: {len(revisions.used)} of {inputs} known{now}; pinned in "
                      f"experiments/{exp.metadata.name}/{LOCK_FILE} (--refresh-revisions resolves again)",
                      markup=False, highlight=False)
        for name, sha in sorted(revisions.used.items()):
            console.print(f"  {name} = {sha}", markup=False, highlight=False)
        for problem in revisions.problems():
            console.print(f"  {problem}", markup=False, highlight=False)
