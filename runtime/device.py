"""What the GPU path does differently from the CPU one, in one place: TF32, pinned non-blocking
copies, and sequence lengths padded to a multiple of 8. On a CPU every helper is the identity of
the plain path, so CPU runs (and their bit-exact resume) are unchanged."""

from __future__ import annotations

import torch


def pad_multiple(device: torch.device) -> int | None:
    """Sequence lengths padded to a multiple of 8 on a GPU (tensor cores); exact lengths on a CPU."""
    return 8 if device.type == "cuda" else None


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def prepare_device(device: torch.device) -> None:
    """TF32 matmuls and convolutions on a GPU (fp32 inputs, 10-bit mantissa products)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
