"""scripts/benchmark_step.py: electra_lit's training step, timed as the GPU benchmark times it,
beside the transformers peer (scripts/hf_peer_step.py, ``--peer hf``) and through Lightning
(``--lightning``).

Its numbers matter on a quiet machine; here it runs at the tiny size on the CPU with a few steps,
so that the script a benchmark session relies on is known to work and says what it measured."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_step.py"
TINY_CPU = ["--sizes", "tiny", "--modes", "fp32", "--device", "cpu", "--threads", "1"]


def test_the_step_is_electra_lits_own_with_static_shapes():
    benchmark = load_script("benchmark_step")
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
    assert peer.returncode == 2 and "--peer PATH (the shared peer file) measures on CUDA only" in peer.stderr
    both = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY_CPU, "--peer", "hf", "--lightning"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_the_hf_peer_has_our_sizes_and_sees_our_batch():
    benchmark = load_script("benchmark_step")
    import hf_peer_step  # importable once the script is: it sits beside it

    module, _, batch = benchmark.build("tiny", torch.device("cpu"), batch_size=4, seq_len=32)
    assert batch["input_ids"].shape == (4, 32)  # the overrides of the size's shape
    ours = {"disc": module.main_model.encoder.config, "gen": module.generator.encoder.config}
    disc, gen = hf_peer_step.electra_configs(ours["disc"], ours["gen"])
    for theirs, mine in ((disc, ours["disc"]), (gen, ours["gen"])):
        assert (
            theirs.hidden_size,
            theirs.num_hidden_layers,
            theirs.num_attention_heads,
            theirs.intermediate_size,
            theirs.embedding_size,
            theirs.vocab_size,
            theirs.hidden_dropout_prob,
        ) == (
            mine.hidden_size,
            mine.num_layers,
            mine.num_heads,
            mine.intermediate_size,
            mine.embedding_dim,
            mine.vocab_size,
            mine.dropout,
        )
    assert (gen.hidden_size, disc.hidden_size, gen.vocab_size) == (32, 128, 30522)  # tiny: the generator 1/4 wide

    inputs = hf_peer_step.peer_inputs(batch)
    assert torch.equal(inputs["input_ids"], batch["input_ids"])  # the same masked input
    slots = batch["masked_weights"] > 0
    rows = torch.arange(4)[:, None].expand_as(slots)
    assert inputs["masked"].sum() == slots.sum()  # the same masked positions
    assert inputs["masked"][rows[slots], batch["masked_positions"][slots]].all()
    assert torch.equal(inputs["labels"][inputs["masked"]], inputs["original_ids"][inputs["masked"]])
    assert (inputs["labels"][~inputs["masked"]] == -100).all()
    assert torch.equal(inputs["original_ids"].gather(1, batch["masked_positions"]), batch["masked_ids"])

    pair = hf_peer_step.HFElectraPair(disc, gen)
    assert pair.gen.electra.embeddings is pair.disc.electra.embeddings  # shared embeddings...
    assert pair.gen.generator_lm_head.weight is pair.disc.electra.embeddings.word_embeddings.weight  # ...tied output
    optimizer = torch.optim.AdamW(pair.parameters(), lr=1e-4)
    before = pair.disc.electra.embeddings.word_embeddings.weight.detach().clone()
    hf_peer_step.make_step(pair, optimizer, inputs)()
    assert not torch.equal(before, pair.disc.electra.embeddings.word_embeddings.weight)


def positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


@pytest.mark.slow
def test_the_hf_peer_runs_on_the_cpu_interleaved_with_ours():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY_CPU, "--peer", "hf", "--steps", "2", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    [line] = [json.loads(line) for line in run.stdout.splitlines()]
    assert {k: line[k] for k in ("size", "batch", "seq_len", "mode", "device", "threads")} == {
        "size": "tiny",
        "batch": 8,
        "seq_len": 64,
        "mode": "fp32",
        "device": "cpu",
        "threads": 1,
    }
    assert line["torch"] == torch.__version__ and line["transformers"]
    assert (line["rounds"], line["steps_per_round"]) == (2, 1)
    for key in ("ours_ms", "peer_ms", "ours_over_peer", "ours_tokens_per_s", "peer_tokens_per_s"):
        assert positive(line[key]), (key, line)
    assert len(line["ours_over_peer_rounds"]) == 2 and all(map(positive, line["ours_over_peer_rounds"]))
    assert line["ours_over_peer"] == pytest.approx(line["ours_ms"] / line["peer_ms"], rel=0.01)


@pytest.mark.slow
def test_the_lightning_mode_times_trainer_fit_against_the_bare_loop():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY_CPU, "--lightning", "--steps", "2", "--rounds", "2", "--batch-size", "4"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    [line] = [json.loads(line) for line in run.stdout.splitlines()]
    assert (line["size"], line["batch"], line["seq_len"], line["mode"], line["device"]) == (
        "tiny",
        4,
        64,
        "fp32",
        "cpu",
    )
    assert (line["rounds"], line["steps_per_round"], line["gradient_clip_val"]) == (2, 1, 1.0)
    for key in ("bare_ms", "lightning_ms", "lightning_loop_ms", "bare_min_ms", "lightning_min_ms"):
        assert positive(line[key]), (key, line)
    assert line["overhead"] == pytest.approx(line["lightning_ms"] / line["bare_ms"] - 1, abs=0.01)
    assert line["loop_overhead"] == pytest.approx(line["lightning_loop_ms"] / line["bare_ms"] - 1, abs=0.01)
    assert len(line["overhead_rounds"]) == 2 and line["overhead"] > -1
