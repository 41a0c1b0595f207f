"""bench/gpu.py: the GPU benchmark's code path, exercised on a CPU with the tiny shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_tiny_cpu_run_prints_throughput_and_ratio_for_every_workload() -> None:
    result = run("--tiny", "--cpu", "--steps", "2", "--reference-steps", "1", "--train", "120", "--eval", "40")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("device: cpu")
    for task in ("xnli", "panx", "squad"):
        rows = [ln for ln in lines if ln.startswith(task)]
        assert len(rows) == 3, result.stdout
        assert "real tokens/s" in rows[0] and "reference (fp32" in rows[1]
        assert "ratio: train" in rows[2]


@pytest.mark.integration
def test_without_cuda_it_skips_with_one_line_and_exit_0() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the bench would run, not skip")
    result = run()
    assert result.returncode == 0
    assert result.stdout.strip().count("\n") == 0 and "skipped: no CUDA device" in result.stdout


@pytest.mark.integration
def test_mfu_counts_real_tokens_with_the_attention_term() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import gpu
    finally:
        sys.path.remove(str(BENCH.parent))
    assert gpu.peak_tflops("NVIDIA H200") == 989.0 and gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0 and gpu.peak_tflops("mystery") is None
    model = gpu.encoder(gpu.TINY, "cpu")
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    n = sum(p.numel() for p in model.parameters()) - embedding
    L, d = gpu.TINY["layers"], gpu.TINY["hidden"]
    assert gpu.flops(model, gpu.TINY, [10, 20]) == 6 * n * 30 + 12 * L * d * (100 + 400)
    lengths = gpu.lengths("panx", 128, 2000, seed=0)
    assert 8 <= min(lengths) and max(lengths) <= 128
    assert abs(sum(lengths) / len(lengths) - 30) < 3  # the registry's mean subword count for PAN-X
