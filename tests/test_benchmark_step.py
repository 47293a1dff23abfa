"""scripts/benchmark_step.py: electra_lit's training step, timed as the GPU benchmark times it.

Its numbers matter only on a GPU beside the peer; here it runs at the tiny size on the CPU, so that
the script a GPU session relies on is known to work."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_step.py"


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_step_is_electra_lits_own_with_static_shapes():
    benchmark = load_script()
    module, optimizer, batch = benchmark.build("tiny", torch.device("cpu"))
    assert batch["input_ids"].shape == (8, 64)  # the tiny size's shape
    assert batch["masked_positions"].shape == (8, 9)  # int((0.15 + 0.005) * 64) prediction slots
    assert batch["masked_weights"].sum(1).tolist() == [9.0] * 8  # round(0.15 * 64) = 10, capped at the 9 slots
    assert module.generator is not None
    assert {p.shape[0] for p in module.main_model.parameters() if p.dim() == 2} >= {
        30522
    }  # the BERT vocab's embeddings
    result = benchmark.measure("tiny", "fp32", steps=2, device=torch.device("cpu"))
    assert result["impl"] == "electra_lit" and result["size"] == "tiny" and result["step_ms"] > 0
    assert result["tokens_per_s"] == pytest.approx(8 * 64 / (result["step_ms"] / 1e3), rel=1e-3)  # step_ms is rounded


@pytest.mark.slow
def test_the_command_prints_a_json_line_per_run_and_names_bad_arguments():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "tiny", "--modes", "fp32,bf16", "--steps", "1", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["size"], r["mode"]) for r in lines] == [("tiny", "fp32"), ("tiny", "bf16")]

    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "small,huge"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "--sizes: unknown huge; choose from tiny, small, base, base512" in bad.stderr
    peer = subprocess.run(
        [sys.executable, str(SCRIPT), "--sizes", "tiny", "--device", "cpu", "--peer", "peer.py"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert peer.returncode == 2 and "--peer measures on CUDA only" in peer.stderr
