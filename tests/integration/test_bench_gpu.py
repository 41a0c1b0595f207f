"""bench/gpu.py: the GPU benchmark's code path, exercised on a CPU with the tiny shape."""

from __future__ import annotations

import dataclasses
import gc
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"

# The GPU machine has neither pydantic nor datasets: the bench runs here with both unimportable.
WITHOUT_PYDANTIC = """
import importlib.abc, runpy, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydantic", "pydantic_core", "datasets"):
            raise ModuleNotFoundError(f"No module named {name!r} (not installed on the GPU machine)")
sys.meta_path.insert(0, Absent())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def gpu() -> Iterator[Any]:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import gpu
    finally:
        sys.path.remove(str(BENCH.parent))
    yield gpu


@pytest.mark.integration
def test_tiny_cpu_run_without_pydantic_or_datasets_prints_every_run_and_the_ratios() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYDANTIC, str(BENCH), "--tiny", "--cpu", "--steps", "2",
         "--reference-steps", "1", "--train", "120", "--eval", "40", "--batch-sizes", "32,16"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("device: cpu")
    for task in ("xnli", "panx", "squad"):
        rows = [ln for ln in lines if ln.startswith(task)]
        assert [r.split()[1:3] for r in rows[:3]] == [["xtrc", "b32"], ["xtrc", "b16"], ["reference", "(fp32,"]], rows
        assert all("real tokens/s" in r and "ms/step" in r for r in rows[:3])
        assert "tf32 off" in rows[2] and "tf32 on" in rows[0]
        assert all("attention train " in r and ", eval " in r for r in rows[:3])
        assert rows[3].startswith(f"{task:6s} ratio: xtrc b32 train ") and "; xtrc b16 train " in rows[3]


@pytest.mark.integration
def test_budget_stops_starting_runs_and_bad_batch_sizes_exit_2() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--tiny", "--cpu", "--tasks", "panx", "--budget-s", "0"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr  # nothing ran, so nothing failed
    rows = [ln for ln in result.stdout.splitlines() if ln.startswith("panx")]
    assert len(rows) == 2 and all("not run: --budget-s 0 spent" in r for r in rows), result.stdout
    result = subprocess.run([sys.executable, str(BENCH), "--tiny", "--cpu", "--batch-sizes", "32,0"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "--batch-sizes: '32,0': give positive integers" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_a_failed_run_is_reported_and_the_other_runs_still_run(gpu: Any, monkeypatch: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    real_run = gpu.run

    def run(workload: Any, shape: Any, device: Any, *, batch_size: int, **kwargs: Any) -> Any:
        if batch_size == 16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_run(workload, shape, device, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(gpu, "run", run)
    # 3 steps of 8 over 12 sequences: the MFU's token replay crosses epochs (the bench checks it
    # against the trainer's own count of real tokens).
    code = gpu.main(["--tiny", "--cpu", "--steps", "3", "--reference-steps", "1", "--train", "12", "--eval", "8",
                     "--tasks", "panx", "--batch-sizes", "16,8"])
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("panx")]
    assert code == 1
    assert "xtrc b16" in rows[0] and "FAILED: OutOfMemoryError: CUDA out of memory" in rows[0]
    assert "xtrc b8" in rows[1] and "real tokens/s" in rows[1] and "reference" in rows[2]
    assert "ratio: xtrc b8 train" in rows[3] and "b16" not in rows[3]


@pytest.mark.integration
def test_without_cuda_it_skips_with_one_line_and_exit_0() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the bench would run, not skip")
    result = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0
    assert result.stdout.strip().count("\n") == 0 and "skipped: no CUDA device" in result.stdout


@pytest.mark.integration
def test_every_recipe_validates_as_the_stage_hyperparameters(gpu: Any) -> None:
    from xtrc.stage import Hyperparameters

    for workload in gpu.WORKLOADS.values():
        for reference in (False, True):
            recipe = gpu.recipe(workload, reference=reference, batch_size=32, steps=30)
            assert Hyperparameters(**dataclasses.asdict(recipe)).model_dump(include=set(dataclasses.asdict(recipe))) \
                == dataclasses.asdict(recipe)


@pytest.mark.integration
@pytest.mark.parametrize("shape_name, lengths", [("tiny", (8, 40, 128)), ("large layer", (128, 384))])
def test_flops_match_torch_flop_counter_on_a_real_forward_and_backward(gpu: Any, shape_name: str,
                                                                      lengths: tuple[int, ...]) -> None:
    """flops() against FlopCounterMode, which counts every matmul torch runs (mm, addmm, bmm and
    the SDPA kernels). On a CPU, transformers' SDPA path with a mask runs through bmm, so the
    attention term is counted too (the eager implementation gives the same total). Sequences are
    unpadded, so real tokens are all the tokens computed."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    # One layer of XLM-R large's width (the formula is per layer; 24 would only take longer).
    shape = gpu.TINY if shape_name == "tiny" else dict(gpu.LARGE, layers=1, vocab=1000)
    model = gpu.encoder(shape, "cpu")
    assert model.config._attn_implementation == "sdpa"
    for t in lengths:
        ids = torch.randint(5, shape["vocab"], (2, t))
        with FlopCounterMode(display=False) as counter:
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            hidden.float().pow(2).mean().backward()
        counted = counter.get_total_flops()
        # Equal up to float rounding: the attention term alone is over 1% of the total at these
        # lengths, so a formula without it (or a counter that stopped seeing SDPA) fails.
        assert gpu.flops(model, shape, [t, t]) == pytest.approx(counted, rel=1e-6), (t, counter.get_flop_counts())
        attention = 2 * 12 * shape["layers"] * shape["hidden"] * t * t
        assert attention / counted > 0.01
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        assert gpu.flops(model, shape, [t, t], training=False) == pytest.approx(counter.get_total_flops(), rel=1e-6)
        model.zero_grad(set_to_none=True)


@pytest.mark.integration
def test_peak_table_and_lengths(gpu: Any) -> None:
    assert gpu.peak_tflops("NVIDIA H200") == 989.0 and gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0 and gpu.peak_tflops("mystery") is None
    lengths = gpu.lengths("panx", 128, 2000, seed=0)
    assert 8 <= min(lengths) and max(lengths) <= 128
    assert abs(sum(lengths) / len(lengths) - 30) < 3  # the registry's mean subword count for PAN-X


@pytest.mark.integration
def test_a_run_restores_tf32_and_leaves_no_model_alive_even_when_it_fails(gpu: Any, monkeypatch: Any) -> None:
    """The reference must train without TF32 and neither recipe's flags may reach the next run;
    and no model may outlive its run (two XLM-R-large-sized models with AdamW state are ~18 GB)."""
    import torch

    from xtrc_runtime.model import TaskModel

    torch.set_num_threads(1)
    device = torch.device("cpu")
    kwargs = dict(batch_size=8, steps=1, train_size=40, eval_size=8)
    models = lambda: sum(type(o) is TaskModel for o in gc.get_objects())  # noqa: E731
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        for before in ((False, True), (True, False)):
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
            gc.collect()
            gc.disable()  # only reference counting and the bench's own collection free the model
            try:
                fast = gpu.run(gpu.WORKLOADS["panx"], gpu.TINY, device, reference=False, **kwargs)
                assert fast["tf32"] is True and models() == 0
                assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
                ref = gpu.run(gpu.WORKLOADS["panx"], gpu.TINY, device, reference=True, **kwargs)
                assert ref["tf32"] is False and models() == 0
                assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
            finally:
                gc.enable()
        torch.backends.cuda.matmul.allow_tf32 = False

        def fail(*args: Any) -> None:
            raise RuntimeError("out of memory, say")

        monkeypatch.setattr(gpu, "consumed", fail)
        gc.disable()
        try:
            with pytest.raises(RuntimeError, match="out of memory"):
                gpu.run(gpu.WORKLOADS["panx"], gpu.TINY, device, reference=False, **kwargs)
            assert models() == 0 and torch.backends.cuda.matmul.allow_tf32 is False
        finally:
            gc.enable()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
