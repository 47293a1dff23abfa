"""The accelerators' peak FLOP/s, the denominator of model FLOPs utilisation (MFU).

MFU = the model's FLOPs per second (:func:`electra_lit.models.pretraining_flops`, matmuls of
forward and backward, whatever the implementation actually runs) / the device's peak for the
precision its matmuls run in. Peaks are the vendors' dense figures (no 2:4 sparsity), from the
NVIDIA data sheets; a device or precision missing here has no MFU unless the run gives its peak
(``callbacks.throughput.peak_tflops``).

Which peak applies: ``bf16``/``16`` precisions use the 16-bit tensor-core peak; fp32 runs use
the TF32 peak when ``float32_matmul_precision`` lets matmuls use TF32 (high, medium), else plain
fp32.
"""

from __future__ import annotations

import re

import torch

# device name pattern (matched in torch.cuda.get_device_name(), lowercase) -> TFLOP/s by matmul precision;
# the first match wins, so the specific H100 variants come before the SXM part
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    r"\bh200\b": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # H200 SXM (same tensor cores as H100 SXM)
    r"\bh100\b.*\bpcie\b": {"bf16": 756.5, "tf32": 378.0, "fp32": 51.2},
    r"\bh100\b.*\bnvl\b": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    r"\bh100\b": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # H100 SXM ("NVIDIA H100 80GB HBM3")
    r"\ba100\b": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},  # SXM and PCIe
    r"\bl4\b": {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3},
}


def matmul_precision(precision: str | int, device_type: str = "cuda") -> str:
    """The precision a trainer's matmuls run in: ``bf16`` (16-bit, bf16 or fp16), ``tf32`` or ``fp32``."""
    precision = str(precision)
    if precision.startswith(("bf16", "16")):
        return "bf16"
    tf32 = device_type == "cuda" and torch.get_float32_matmul_precision() != "highest"
    return "tf32" if tf32 else "fp32"


def peak_flops(device_name: str, precision: str) -> float | None:
    """Peak FLOP/s of the device named ``device_name`` (as ``torch.cuda.get_device_name`` gives it)
    for matmuls in ``precision`` (:func:`matmul_precision`); None when the table does not know it."""
    name = device_name.lower()
    for pattern, peaks in PEAK_TFLOPS.items():
        if re.search(pattern, name):
            tflops = peaks.get(precision)
            return None if tflops is None else tflops * 1e12
    return None
