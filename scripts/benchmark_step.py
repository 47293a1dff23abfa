"""Time of one ELECTRA training step (generator + discriminator, forward, backward, AdamW), next to
the Hugging Face peer or next to the same step run by Lightning, measured in the same process.

    python scripts/benchmark_step.py [--sizes small,base,base512] [--modes bf16,compile] [--steps 20]
                                     [--rounds 5] [--batch-size B] [--seq-len S] [--threads N]
                                     [--device cuda] [--peer hf | --peer .peer/peer_electra.py | --lightning]

Sizes are the peer's shapes: ``small`` (model=small, batch 128 x 128), ``base`` (model=base, batch
256 x 128), ``base512`` (model=base, batch 64 x 512), plus ``tiny`` (the default model, batch
8 x 64) for a quick check on a CPU; ``--batch-size``/``--seq-len`` replace the size's batch shape
(e.g. ``small`` at 32 x 128 on a CPU), and every JSON line says the ``batch`` and ``seq_len`` used.
Modes: ``fp32``, ``bf16`` (autocast, as ``trainer=gpu``), ``compile`` (bf16 + the step compiled as
``compile=inductor`` compiles it: one graph, fullgraph, static shapes), ``cudagraphs`` (bf16 + as
``compile=cudagraphs``: CUDA graphs, GPU only; the peer gets ``torch.compile(mode="reduce-overhead")``). The step is electra_lit's own: the model and objective built from ``conf/`` (``model=...``),
a batch from the masking collator (static shapes), AdamW.

Without ``--peer`` or ``--lightning``: one JSON line per (size, mode) with electra_lit's median
``step_ms`` over ``--steps`` steps and ``tokens_per_s``.

``--peer hf`` (any device: cpu or cuda): the built-in transformers peer of ``scripts/hf_peer_step.py``,
the ELECTRA step as a transformers user writes it (ElectraForMaskedLM generator over the whole
sequence, Gumbel sampling at the masked positions, ElectraForPreTraining discriminator, shared and
tied embeddings, gen + 50 x disc, AdamW), at electra_lit's sizes for the size (its ElectraConfigs
are made from the encoder configs electra_lit builds) and on the same batch (the same input ids and
masked positions). The two steps are interleaved: ``--rounds`` rounds of ``--steps / --rounds``
steps of each, the order alternating, so that background load hits both alike. One JSON line per
(size, mode): ``ours_ms`` and ``peer_ms`` (medians), ``ours_over_peer`` (our step time as a fraction
of the peer's: below 1 means electra_lit is faster) and its value in each round, tokens/s of both,
the shape, device, threads and library versions.

``--peer PATH`` (CUDA only): the shared yardstick ``peer_electra.py`` (``../shared/bench/``; its
own shapes, so no ``--batch-size``/``--seq-len``), run after ours for each size and mode; it prints
its own JSON line, then the ratio ``peer_hf_over_electra_lit`` (peer / ours: above 1 means
electra_lit is faster).

``--lightning``: Lightning's overhead. The same step through ``Trainer.fit`` (the
ElectraPretrainModule of the config, a DataLoader yielding the same prepared batch every step,
logger, checkpointing, progress bar and model summary off, ``gradient_clip_val=1.0`` as the default
trainer config) against the bare loop (forward, backward, gradient clipping at 1.0, the module's own
AdamW and LR schedule from ``configure_optimizers``), interleaved in rounds as above (the bare round
runs inside the fit, between two Lightning steps, outside their timing). One JSON line per (size,
mode; fp32 or bf16): ``bare_ms``, ``lightning_ms`` (a callback's on_train_batch_start ->
on_train_batch_end), ``overhead`` = lightning_ms / bare_ms - 1, ``lightning_loop_ms`` /
``loop_overhead``: the time from one batch start to the next, which adds what Lightning does
between batches (fetching the batch, the metrics of ``self.log``), and ``overhead_of_minimums``
from the fastest step of each (steadier on a busy machine, where load only adds time).

``--rounds`` equal to ``--steps`` alternates every step, the finest interleaving. On a CPU shared
with other work, ``--threads 1`` gives steadier numbers than several threads waiting on each other.
Compare only numbers from one call, never times of two.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

import electra_lit  # noqa: F401  registers the config resolvers
from electra_lit.data import MaskingCollator, SpecialTokenIds
from electra_lit.lit.compile import CompileConfig, mark_step_begin
from electra_lit.runs.pretrain import build_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hf_peer_step  # noqa: E402  the transformers peer, beside this script

# size -> (model= option, batch size, sequence length): the peer's shapes (shared/bench/README.md)
SIZES = {
    "tiny": ("tiny", 8, 64),
    "small": ("small", 128, 128),
    "base": ("base", 256, 128),
    "base512": ("base", 64, 512),
}
MODES = ("fp32", "bf16", "compile", "cudagraphs")
COMPILED = {  # mode -> how the step is compiled: the run's own CompileConfig, as compile=... builds it
    "compile": CompileConfig(enabled=True),
    "cudagraphs": CompileConfig(enabled=True, mode="reduce-overhead"),
}
WARMUP_STEPS = 3  # compilation and allocator warm-up are not the step
GRADIENT_CLIP = 1.0  # conf/trainer/default.yaml's gradient_clip_val


def shape(size: str, batch_size: int | None = None, seq_len: int | None = None) -> tuple[str, int, int]:
    """(model option, batch size, sequence length) of ``size``, with the overrides given."""
    model, default_batch, default_seq = SIZES[size]
    return model, batch_size or default_batch, seq_len or default_seq


def build(size: str, device: torch.device, batch_size: int | None = None, seq_len: int | None = None):
    """The pretraining module, its optimizer and one masked batch, as electra-pretrain builds them."""
    model, batch_size, seq_len = shape(size, batch_size, seq_len)
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


def autocast_for(mode: str, device: torch.device):
    if mode in ("bf16", *COMPILED):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def syncer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def our_step(
    module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    mode: str,
    device: torch.device,
    clip: float | None = None,
    scheduler=None,
) -> Callable[[], None]:
    """One electra_lit training step: the objective's loss, backward, (clipping,) AdamW, (LR schedule)."""
    compiled = COMPILED.get(mode, CompileConfig())
    compiled.check_runs_on(device)
    run_objective = compiled.build(module.run_objective)

    def forward(batch):
        if compiled.cuda_graphs:
            mark_step_begin()
        return run_objective(batch).loss

    autocast = autocast_for(mode, device)
    parameters = [p for p in module.parameters() if p.requires_grad]

    def step() -> None:
        with autocast:
            loss = forward(batch)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def peer_step(module, batch: dict[str, torch.Tensor], mode: str, device: torch.device) -> Callable[[], None]:
    """The transformers peer's step at ``module``'s sizes, on ``batch`` (scripts/hf_peer_step.py)."""
    configs = hf_peer_step.electra_configs(module.main_model.encoder.config, module.generator.encoder.config)
    disc_weight = getattr(module.objective, "disc_weight", 50.0)
    pair = hf_peer_step.HFElectraPair(*configs, disc_weight=disc_weight).to(device).train()
    optimizer = torch.optim.AdamW(pair.parameters(), lr=1e-4, fused=True if device.type == "cuda" else None)
    forward = None
    if mode in COMPILED:
        forward = torch.compile(pair, mode="reduce-overhead" if COMPILED[mode].cuda_graphs else None)
    return hf_peer_step.make_step(
        pair, optimizer, hf_peer_step.peer_inputs(batch), autocast_for(mode, device), forward=forward
    )


def timed(step: Callable[[], None], sync: Callable[[], None]) -> float:
    """Milliseconds of one ``step()``, the device's queue drained at both ends."""
    sync()
    start = time.perf_counter()
    step()
    sync()
    return (time.perf_counter() - start) * 1e3


def interleave(
    steps: dict[str, Callable[[], None]], total: int, rounds: int, sync: Callable[[], None]
) -> dict[str, list[list[float]]]:
    """Each step's times (ms) by round: after ``WARMUP_STEPS`` of each, ``rounds`` rounds of
    ``ceil(total / rounds)`` steps of each, the order of the steps reversed every other round."""
    for step in steps.values():
        for _ in range(WARMUP_STEPS):
            step()
    sync()
    per_round = max(1, math.ceil(total / rounds))
    times: dict[str, list[list[float]]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append([timed(steps[name], sync) for _ in range(per_round)])
    return times


def median_ms(rounds: list[list[float]]) -> float:
    return statistics.median(t for times in rounds for t in times)


def ratios_by_round(ours: list[list[float]], theirs: list[list[float]]) -> list[float]:
    return [round(statistics.median(a) / statistics.median(b), 3) for a, b in zip(ours, theirs)]


def environment(size: str, mode: str, device: torch.device, batch_size: int, seq_len: int) -> dict:
    return {
        "size": size,
        "batch": batch_size,
        "seq_len": seq_len,
        "mode": mode,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def measure(
    size: str,
    mode: str,
    steps: int,
    device: torch.device,
    batch_size: int | None = None,
    seq_len: int | None = None,
) -> dict:
    """electra_lit's step alone: median ms over ``steps`` steps after the warm-up."""
    torch.manual_seed(0)
    module, optimizer, batch = build(size, device, batch_size, seq_len)
    step = our_step(module, optimizer, batch, mode, device)
    sync = syncer(device)
    start = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        step()
    sync()
    warm_s = time.perf_counter() - start
    ms = statistics.median(timed(step, sync) for _ in range(steps))
    _, batch_size, seq_len = shape(size, batch_size, seq_len)
    return {
        "impl": "electra_lit",
        **environment(size, mode, device, batch_size, seq_len),
        "step_ms": round(ms, 2),
        "tokens_per_s": round(batch_size * seq_len / (ms / 1e3)),
        "warm_s": round(warm_s, 1),
    }


def compare_with_hf(
    size: str,
    mode: str,
    steps: int,
    rounds: int,
    device: torch.device,
    batch_size: int | None = None,
    seq_len: int | None = None,
) -> dict:
    """electra_lit's step and the transformers peer's on the same batch, interleaved (``--peer hf``)."""
    import transformers

    torch.manual_seed(0)
    module, optimizer, batch = build(size, device, batch_size, seq_len)
    steps_of = {
        "ours": our_step(module, optimizer, batch, mode, device),
        "peer": peer_step(module, batch, mode, device),
    }
    times = interleave(steps_of, steps, rounds, syncer(device))
    ours, peer = median_ms(times["ours"]), median_ms(times["peer"])
    _, batch_size, seq_len = shape(size, batch_size, seq_len)
    tokens = batch_size * seq_len
    return {
        **environment(size, mode, device, batch_size, seq_len),
        "transformers": transformers.__version__,
        "rounds": rounds,
        "steps_per_round": len(times["ours"][0]),
        "ours_ms": round(ours, 2),
        "peer_ms": round(peer, 2),
        "ours_over_peer": round(ours / peer, 3),
        "ours_over_peer_rounds": ratios_by_round(times["ours"], times["peer"]),
        "ours_tokens_per_s": round(tokens / (ours / 1e3)),
        "peer_tokens_per_s": round(tokens / (peer / 1e3)),
    }


def configured_optimizer(module, max_steps: int):
    """The optimizer and LR scheduler of ``module.configure_optimizers()`` for a run of ``max_steps``,
    without a Trainer (the module reads only ``trainer.max_steps``)."""
    module.trainer = SimpleNamespace(max_steps=max_steps)
    try:
        config = module.configure_optimizers()
    finally:
        module.trainer = None
    if isinstance(config, torch.optim.Optimizer):
        return config, None
    scheduler = config.get("lr_scheduler")
    return config["optimizer"], scheduler.get("scheduler") if isinstance(scheduler, dict) else scheduler


class SameBatch(torch.utils.data.IterableDataset):
    """Yields one prepared batch forever: the DataLoader of the Lightning run."""

    def __init__(self, batch: dict[str, torch.Tensor]):
        super().__init__()
        self.batch = batch

    def __iter__(self):
        while True:
            yield self.batch


def step_timer(skip: int, per_round: int, between: Callable[[], None], sync: Callable[[], None]):
    """A callback timing each training batch from on_train_batch_start to on_train_batch_end
    (``hook_ms``) and from one batch start to the next (``loop_ms``), after ``skip`` warm-up
    batches; after every ``per_round`` timed batches it runs ``between()`` (a bare round) at the
    next batch start, outside both timings."""
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self):
            self.hook_ms: list[float] = []
            self.loop_ms: list[float] = []
            self.index = 0  # batches ended
            self.started = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            sync()
            now = time.perf_counter()
            if self.index > skip:  # the batch before was timed: its loop period ends here
                self.loop_ms.append((now - self.started) * 1e3)
            done = self.index - skip
            if done > 0 and done % per_round == 0:
                between()
                sync()
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            sync()
            if self.index >= skip:
                self.hook_ms.append((time.perf_counter() - self.started) * 1e3)
            self.index += 1

    return StepTimer()


def lightning_overhead(
    size: str,
    mode: str,
    steps: int,
    rounds: int,
    device: torch.device,
    batch_size: int | None = None,
    seq_len: int | None = None,
) -> dict:
    """The step through ``Trainer.fit`` against the bare loop, interleaved (``--lightning``)."""
    import lightning as L

    from electra_lit.runs.console import hide_lightning_tips

    per_round = max(1, math.ceil(steps / rounds))
    max_steps = WARMUP_STEPS + rounds * per_round
    sync = syncer(device)

    torch.manual_seed(0)
    module, _, batch = build(size, device, batch_size, seq_len)
    torch.manual_seed(0)
    bare, _, _ = build(size, device, batch_size, seq_len)
    bare.train()
    optimizer, scheduler = configured_optimizer(bare, max_steps)
    step = our_step(bare, optimizer, batch, mode, device, clip=GRADIENT_CLIP, scheduler=scheduler)
    for _ in range(WARMUP_STEPS):
        step()
    bare_rounds: list[list[float]] = []

    def bare_round() -> None:
        bare_rounds.append([timed(step, sync) for _ in range(per_round)])

    timer = step_timer(WARMUP_STEPS, per_round, bare_round, sync)
    hide_lightning_tips()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|__len__|no `val_dataloader`).*")
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else device.type,
            devices=1,
            precision="bf16-mixed" if mode == "bf16" else "32-true",
            max_steps=max_steps,
            max_epochs=-1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            gradient_clip_val=GRADIENT_CLIP,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[timer],
            default_root_dir=root,
        )
        loader = torch.utils.data.DataLoader(SameBatch(batch), batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
    while len(bare_rounds) < rounds:  # the last round's bare steps come after the fit
        bare_round()

    lightning_rounds = [timer.hook_ms[i : i + per_round] for i in range(0, len(timer.hook_ms), per_round)]
    bare_ms, lightning_ms, loop_ms = (
        median_ms(bare_rounds),
        median_ms(lightning_rounds),
        statistics.median(timer.loop_ms),
    )
    _, batch_size, seq_len = shape(size, batch_size, seq_len)
    return {
        **environment(size, mode, device, batch_size, seq_len),
        "lightning": L.__version__,
        "rounds": rounds,
        "steps_per_round": per_round,
        "gradient_clip_val": GRADIENT_CLIP,
        "bare_ms": round(bare_ms, 2),
        "lightning_ms": round(lightning_ms, 2),
        "overhead": round(lightning_ms / bare_ms - 1, 4),
        "overhead_rounds": [round(r - 1, 4) for r in ratios_by_round(lightning_rounds, bare_rounds)],
        "lightning_loop_ms": round(loop_ms, 2),
        "loop_overhead": round(loop_ms / bare_ms - 1, 4),
        # the fastest step of each: background load only adds time, so on a busy machine the
        # minimums' ratio is the steadier estimate
        "bare_min_ms": round(min(map(min, bare_rounds)), 2),
        "lightning_min_ms": round(min(timer.hook_ms), 2),
        "overhead_of_minimums": round(min(timer.hook_ms) / min(map(min, bare_rounds)) - 1, 4),
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
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each implementation")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (--peer hf, --lightning)")
    parser.add_argument("--batch-size", type=int, help="sequences per batch instead of the size's")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence instead of the size's (at most 512)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--peer",
        metavar="hf|PATH",
        help="hf: the transformers peer of scripts/hf_peer_step.py, interleaved, any device; "
        "PATH: the shared peer_electra.py, its HF run of each size and mode, in this process (CUDA only)",
    )
    what.add_argument(
        "--lightning", action="store_true", help="Lightning's overhead: Trainer.fit against the bare loop"
    )
    args = parser.parse_args()
    sizes, modes = args.sizes.split(","), args.modes.split(",")
    for name, given, known in (("--sizes", sizes, SIZES), ("--modes", modes, MODES)):
        unknown = [value for value in given if value not in known]
        if unknown:
            parser.error(f"{name}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    for name, value in (("--steps", args.steps), ("--rounds", args.rounds)):
        if value < 1:
            parser.error(f"{name}={value} must be at least 1")
    for name, value in (("--batch-size", args.batch_size), ("--seq-len", args.seq_len), ("--threads", args.threads)):
        if value is not None and value < 1:
            parser.error(f"{name}={value} must be at least 1")
    if args.seq_len is not None and not 8 <= args.seq_len <= 512:
        parser.error(f"--seq-len={args.seq_len} must be in [8, 512] (the position table holds 512)")
    device = torch.device(args.device)
    peer_file = args.peer if args.peer not in (None, "hf") else None
    if peer_file and device.type != "cuda":
        parser.error("--peer PATH (the shared peer file) measures on CUDA only; on this device use --peer hf")
    if peer_file and (args.batch_size or args.seq_len):
        parser.error("--peer PATH runs the shared peer's own shapes: no --batch-size or --seq-len; use --peer hf")
    if "cudagraphs" in modes and not args.device.startswith("cuda"):
        parser.error(f"--modes cudagraphs records CUDA graphs and needs --device cuda, not {args.device}")
    if args.lightning and set(modes) & set(COMPILED):
        parser.error("--lightning measures fp32 and bf16; not compile or cudagraphs")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # as the peer: bf16 autocast, fp32 matmuls in full precision

    shape_args = {"batch_size": args.batch_size, "seq_len": args.seq_len}
    peer = load_peer(peer_file) if peer_file else None
    for size in sizes:
        for mode in modes:
            if args.peer == "hf" or args.lightning:
                run = compare_with_hf if args.peer == "hf" else lightning_overhead
                print(json.dumps(run(size, mode, args.steps, args.rounds, device, **shape_args)), flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            ours = measure(size, mode, args.steps, device, **shape_args)
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
            torch.cuda.empty_cache()  # --peer PATH runs on CUDA only


if __name__ == "__main__":
    main()
