"""`xtrc render` says its Jobs carry no ordering; `--ready-only` prints only what can start now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from xtrc.loader import load
from xtrc.plan import build
from xtrc.render import RENDER_NOTE
from xtrc.store import Store

SPEC = Path(__file__).resolve().parents[2] / "specs" / "smoke.yaml"
XTRC = str(Path(sys.executable).parent / "xtrc")


def _render(*args: str) -> tuple[str, list[dict]]:
    result = subprocess.run([XTRC, "render", str(SPEC), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout, [d for d in yaml.safe_load_all(result.stdout)]


def _keys(docs: list[dict]) -> set[str]:
    return {d["metadata"]["labels"]["xtrc.dev/stage-key"] for d in docs if d["kind"] == "Job"}


def test_render_says_its_jobs_carry_no_ordering() -> None:
    out, docs = _render()
    assert out.startswith(RENDER_NOTE) and "carry no ordering" in RENDER_NOTE and "--ready-only" in RENDER_NOTE
    assert len(_keys(docs)) == len(build(load(SPEC)).stages)


def test_ready_only_renders_the_stages_whose_upstreams_are_done_in_the_store(tmp_path: Path) -> None:
    store_uri = f"file://{tmp_path / 'store'}"
    plan = build(load(SPEC))
    roots = {k for k, s in plan.stages.items() if not s.upstream}
    assert roots and roots != set(plan.stages)

    out, docs = _render("--store", store_uri, "--ready-only")
    assert _keys(docs) == roots
    assert docs[0]["kind"] == "NetworkPolicy"
    assert f"# --ready-only: {len(roots)} of {len(plan.stages)} stages" in out

    # One upstream stage done: it leaves the output, and the stages that waited only for it enter.
    done = next(k for k in roots if any(k in s.upstream for s in plan.stages.values()))
    marker = Path(Store(store_uri).layout.success(done).removeprefix("file://"))
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    _, docs = _render("--store", store_uri, "--ready-only")
    unblocked = {k for k, s in plan.stages.items() if s.upstream and set(s.upstream) == {done}}
    assert unblocked and _keys(docs) == (roots - {done}) | unblocked
