"""``compile=``: the pretraining step compiles as one graph (no graph breaks) for every objective
and sharing mode, in fp32 and under bf16 autocast; a compiled run resumes exactly; CUDA graphs
are refused where they are not safe."""

import lightning as L
import pytest
import torch
import torch._dynamo
from test_flops import fixed_shape_batch, models_for

from conftest import FAST
from electra_lit.errors import ConfigError
from electra_lit.lit.compile import CompileConfig, clone_tensors
from electra_lit.objectives import AllTokensMLM, MaskedLanguageModeling, ReplacedTokenDetection, ReplaceMLM
from electra_lit.runs.pretrain import train

OBJECTIVES = {
    "electra": (ReplacedTokenDetection(), "shared"),
    "electra_15": (ReplacedTokenDetection(masked_only=True), "shared"),
    "electra-all-shared": (ReplacedTokenDetection(), "all"),
    "electra-untied": (ReplacedTokenDetection(), "untied"),
    "mlm": (MaskedLanguageModeling(), "shared"),
    "replace_mlm-gdes": (ReplaceMLM(), "gdes"),
    "all_tokens_mlm": (AllTokensMLM(), "untied"),
}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_the_step_is_one_graph_without_breaks(name, precision):
    objective, sharing = OBJECTIVES[name]
    generator, main = models_for(objective, sharing)

    def step(batch):
        return objective(generator, main, batch)

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with autocast:
        explained = torch._dynamo.explain(step)(fixed_shape_batch())
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_cuda_graphs_are_refused_where_unsafe():
    cudagraphs = CompileConfig(enabled=True, mode="reduce-overhead")
    with pytest.raises(ConfigError, match=r"compile.mode=reduce-overhead records CUDA graphs.*on cpu; use compile="):
        cudagraphs.check_runs_on(torch.device("cpu"))
    with pytest.raises(ConfigError, match="cannot capture a fsdp step"):
        cudagraphs.check_runs_on(torch.device("cuda"), "FSDPStrategy")
    cudagraphs.check_runs_on(torch.device("cuda"), "DDPStrategy")  # whole parameters on each device: allowed
    CompileConfig(enabled=True, mode="default").check_runs_on(torch.device("cpu"))  # no CUDA graphs: allowed
    with pytest.raises(ConfigError, match="compile.mode=fast is not one of: default"):
        CompileConfig(enabled=True, mode="fast")


def test_outputs_are_cloned_with_their_gradient_history():
    weight = torch.ones(3, requires_grad=True)
    out = {"loss": (weight * 2).sum(), "parts": [1]}
    cloned = clone_tensors(out)
    assert cloned["loss"] is not out["loss"] and cloned["parts"] == [1]
    cloned["loss"].backward()
    assert weight.grad.tolist() == [2.0, 2.0, 2.0]


def test_cudagraphs_on_cpu_stop_the_run_before_anything_is_written(compose_pretrain, tmp_path):
    with pytest.raises(ConfigError, match="need a CUDA GPU, and this run is on cpu"):
        train(compose_pretrain(*FAST, "compile=cudagraphs", "trainer.max_steps=2"))
    assert not (tmp_path / "run").exists()


class LossRecorder(L.Callback):
    """Training loss by global step into ``LossRecorder.losses``; stops the run after
    ``stop_after`` steps when set."""

    losses: dict = {}

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        LossRecorder.losses[trainer.global_step] = outputs["loss"].item()
        if trainer.global_step == self.stop_after:
            trainer.should_stop = True


RECORD = "+callbacks.losses._target_=test_compile.LossRecorder"


def recorded_run(compose_pretrain, *overrides, run_dir, stop_after=None) -> dict:
    """Train with ``overrides`` in ``run_dir``; the losses by step of this call."""
    LossRecorder.losses = {}
    stop = [f"+callbacks.losses.stop_after={stop_after}"] if stop_after else []
    train(compose_pretrain(*overrides, RECORD, *stop, run_dir=run_dir))
    return dict(LossRecorder.losses)


@pytest.mark.slow
def test_a_compiled_run_resumes_exactly_under_bf16(compose_pretrain, tmp_path):
    # aot_eager traces the whole step as inductor does (same graph, same breaks), without
    # generating C++ kernels, which take minutes on two cores; test_inductor_... below compiles
    common = [
        *FAST,
        "compile=inductor",
        "compile.backend=aot_eager",
        "trainer.precision=bf16-mixed",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "trainer.limit_val_batches=1",
    ]
    straight = recorded_run(compose_pretrain, *common, run_dir=tmp_path / "straight")
    stopped = recorded_run(compose_pretrain, *common, run_dir=tmp_path / "resumed", stop_after=4)
    assert sorted(stopped) == [1, 2, 3, 4]
    resumed = recorded_run(compose_pretrain, *common, run_dir=tmp_path / "resumed")
    assert min(resumed) in (4, 5) and max(resumed) == 6  # from the step-3 checkpoint, or one saved at the stop
    assert sorted(straight) == [1, 2, 3, 4, 5, 6]
    assert {**stopped, **resumed} == pytest.approx(straight, rel=1e-6)


@pytest.mark.slow
def test_inductor_compiles_the_step_on_cpu_with_the_eager_losses(compose_pretrain, tmp_path):
    common = [*FAST, "trainer.max_steps=2", "trainer.limit_val_batches=0"]
    eager = recorded_run(compose_pretrain, *common, run_dir=tmp_path / "eager")
    torch._dynamo.reset()
    compiled = recorded_run(compose_pretrain, *common, "compile=inductor", run_dir=tmp_path / "compiled")
    assert sorted(compiled) == [1, 2]
    assert compiled == pytest.approx(eager, rel=1e-3)  # fused kernels round differently; same data, same samples
