"""The device peaks behind perf/mfu: which table row a device name and a precision pick."""

import pytest
import torch

from electra_lit.lit import TokenThroughputMonitor
from electra_lit.peak_flops import matmul_precision, peak_flops


@pytest.mark.parametrize(
    "name, precision, tflops",
    [
        ("NVIDIA H200", "bf16", 989.4),
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 80GB HBM3", "tf32", 494.7),
        ("NVIDIA H100 PCIe", "bf16", 756.5),
        ("NVIDIA H100 NVL", "tf32", 417.5),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
        ("NVIDIA A100-PCIE-40GB", "tf32", 156.0),
        ("NVIDIA A100-SXM4-40GB", "fp32", 19.5),
        ("NVIDIA L4", "bf16", 121.0),
        ("NVIDIA L4", "tf32", 60.0),
    ],
)
def test_known_devices_have_their_dense_peak(name, precision, tflops):
    assert peak_flops(name, precision) == pytest.approx(tflops * 1e12)


@pytest.mark.parametrize("name", ["NVIDIA L40S", "Tesla T4", "NVIDIA GeForce RTX 4090", "cpu"])
def test_unknown_devices_have_no_peak(name):
    assert peak_flops(name, "bf16") is None


def test_the_trainer_precision_picks_the_matmul_precision():
    assert matmul_precision("bf16-mixed") == matmul_precision("16-mixed") == "bf16"
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        assert matmul_precision("32-true") == "tf32"
        assert matmul_precision("32-true", device_type="cpu") == "fp32"
        torch.set_float32_matmul_precision("highest")
        assert matmul_precision("32-true") == "fp32"
    finally:
        torch.set_float32_matmul_precision(previous)


def test_a_configured_peak_must_be_positive():
    with pytest.raises(ValueError, match="peak_tflops=0 must be > 0"):
        TokenThroughputMonitor(peak_tflops=0)
