"""Time of one ELECTRA training step (generator + discriminator, forward, backward, AdamW), next to
the Hugging Face peer measured in the same process.

    python scripts/benchmark_step.py [--sizes small,base,base512] [--modes bf16,compile] [--steps 20]
                                     [--peer .peer/peer_electra.py] [--device cuda]

Sizes are the peer's shapes: ``small`` (model=small, batch 128 x 128), ``base`` (model=base, batch
256 x 128), ``base512`` (model=base, batch 64 x 512), plus ``tiny`` (the default model, batch
8 x 64) for a quick check on a CPU. Modes: ``fp32``, ``bf16`` (autocast, as ``trainer=gpu``),
``compile`` (bf16 + torch.compile). The step is electra_lit's own: the model and objective built
from ``conf/`` (``model=...``), a batch from the masking collator (static shapes), the AdamW of
``configure_optimizers``. Prints one JSON line per run (step_ms, tokens_per_s), then, with
``--peer`` (on a GPU), the peer's line for the same size and mode and the ratio peer / ours:
above 1 means electra_lit is faster. Compare only ratios from one call, never times of two.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import time

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

import electra_lit  # noqa: F401  registers the config resolvers
from electra_lit.data import MaskingCollator, SpecialTokenIds
from electra_lit.runs.pretrain import build_module

# size -> (model= option, batch size, sequence length): the peer's shapes (shared/bench/README.md)
SIZES = {
    "tiny": ("tiny", 8, 64),
    "small": ("small", 128, 128),
    "base": ("base", 256, 128),
    "base512": ("base", 64, 512),
}
MODES = ("fp32", "bf16", "compile")


def build(size: str, device: torch.device):
    """The pretraining module, its optimizer and one masked batch, as electra-pretrain builds them."""
    model, batch_size, seq_len = SIZES[size]
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        cfg = compose(
            "pretrain",
            overrides=[
                f"model={model}",
                "tokenizer=bert_uncased",
                "trainer.max_steps=1000",
                f"data.batch_size={batch_size}",
                f"data.max_seq_length={seq_len}",
            ],
        )
    tokenizer = instantiate(cfg.tokenizer)
    module = build_module(cfg, tokenizer.get_vocab_size()).to(device)
    special = SpecialTokenIds.from_tokenizer(tokenizer)
    collator = MaskingCollator(
        **cfg.masking, special_token_ids=special, max_seq_length=seq_len, vocab_size=tokenizer.get_vocab_size(), seed=0
    )
    generator = torch.Generator().manual_seed(0)
    examples = []
    for key in range(batch_size):  # full-length sequences of random words, as the peer's
        ids = torch.randint(1000, tokenizer.get_vocab_size(), (seq_len,), generator=generator)
        ids[0], ids[-1] = special.cls, special.sep
        examples.append(
            {
                "key": key,
                "input_ids": ids.numpy(),
                "token_type_ids": torch.zeros(seq_len).numpy(),
                "attention_mask": torch.ones(seq_len).numpy(),
            }
        )
    batch = {name: tensor.to(device) for name, tensor in collator(examples).items()}
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4, fused=True if device.type == "cuda" else None)
    return module, optimizer, batch


def measure(size: str, mode: str, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    module, optimizer, batch = build(size, device)
    objective = module.objective

    def loss_of(batch):
        return objective(module.generator, module.main_model, batch).loss

    forward = torch.compile(loss_of) if mode == "compile" else loss_of
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if mode in ("bf16", "compile") else contextlib.nullcontext()
    )

    def step():
        with autocast:
            loss = forward(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(3):  # compilation and allocator warm-up are not the step
        step()
    sync()
    warm_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    ms = statistics.median(times)
    _, batch_size, seq_len = SIZES[size]
    return {
        "impl": "electra_lit",
        "size": size,
        "mode": mode,
        "device": device.type,
        "step_ms": round(ms, 2),
        "tokens_per_s": round(batch_size * seq_len / (ms / 1e3)),
        "warm_s": round(warm_s, 1),
    }


def load_peer(path: str):
    spec = importlib.util.spec_from_file_location("peer_electra", path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    return peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,base,base512")
    parser.add_argument("--modes", default="bf16,compile")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peer", help="the peer's peer_electra.py: its HF run of each size and mode, in this process")
    args = parser.parse_args()
    sizes, modes = args.sizes.split(","), args.modes.split(",")
    for name, given, known in (("--sizes", sizes, SIZES), ("--modes", modes, MODES)):
        unknown = [value for value in given if value not in known]
        if unknown:
            parser.error(f"{name}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    device = torch.device(args.device)
    if args.peer and device.type != "cuda":
        parser.error("--peer measures on CUDA only; run it on a GPU machine")
    torch.backends.cuda.matmul.allow_tf32 = False  # as the peer: bf16 autocast, fp32 matmuls in full precision

    peer = load_peer(args.peer) if args.peer else None
    for size in sizes:
        for mode in modes:
            ours = measure(size, mode, args.steps, device)
            print(json.dumps(ours), flush=True)
            if peer is None or size == "tiny":
                continue
            theirs = peer.run("hf", size, mode, args.steps, "sdpa")  # prints its own JSON line
            print(
                json.dumps(
                    {
                        "size": size,
                        "mode": mode,
                        "peer_hf_over_electra_lit": round(theirs["step_ms"] / ours["step_ms"], 2),
                    }
                ),
                flush=True,
            )
            torch.cuda.empty_cache()  # --peer runs on CUDA only


if __name__ == "__main__":
    main()
