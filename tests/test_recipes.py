"""Recipes apart from sizes: recipe= brings the paper's training recipe with its global batch,
model= only the sizes, and the global batch decides the per-device batch and the accumulation."""

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from electra_lit.cli.pretrain import check_recipe_given
from electra_lit.config.schema import validate_config
from electra_lit.errors import ConfigError
from electra_lit.runs.batch import BatchPlan, configured_world_size, plan_batch, plan_from_config
from electra_lit.runs.pretrain import with_batch_plan

BERT_VOCAB = "electra_lit.data.load_wordpiece"


def test_large_on_8_gpus_takes_the_papers_global_batch(compose_pretrain):
    cfg = compose_pretrain("recipe=electra_large", "trainer=ddp", "trainer.devices=8")
    assert (cfg.global_batch_size, cfg.data.max_seq_length, cfg.data.batch_size) == (2048, 512, None)
    assert configured_world_size(cfg.trainer) == 8
    assert plan_from_config(cfg, 8) == BatchPlan(micro_batch_size=256, accumulate_grad_batches=1)

    accumulated = compose_pretrain(
        "recipe=electra_large", "trainer=ddp", "trainer.devices=8", "trainer.accumulate_grad_batches=8"
    )
    assert plan_from_config(accumulated, 8) == (32, 8)
    planned = with_batch_plan(accumulated)
    assert (planned.data.batch_size, planned.trainer.accumulate_grad_batches) == (32, 8)
    assert accumulated.data.batch_size is None  # the caller's config is left as it was


@pytest.mark.parametrize(
    "recipe, hidden, lr, global_batch, seq, steps, mask_prob",
    [  # /work/shared/ELECTRA_SPEC.md, the architecture table and the masking section
        ("electra_small", 256, 5e-4, 128, 128, 1_000_000, 0.15),
        ("electra_base", 768, 2e-4, 256, 512, 766_000, 0.15),
        ("electra_large", 1024, 2e-4, 2048, 512, 400_000, 0.25),
    ],
)
def test_paper_recipes_match_the_spec(compose_pretrain, recipe, hidden, lr, global_batch, seq, steps, mask_prob):
    cfg = compose_pretrain(f"recipe={recipe}")
    validate_config(with_batch_plan(cfg))
    assert cfg.model.discriminator.hidden_size == hidden
    assert cfg.tokenizer._target_ == BERT_VOCAB
    assert (cfg.optimizer.lr, cfg.global_batch_size, cfg.data.max_seq_length) == (lr, global_batch, seq)
    assert (cfg.trainer.max_steps, cfg.lr_schedule.warmup_steps, cfg.masking.mask_prob) == (steps, 10_000, mask_prob)


def test_a_model_on_the_command_line_wins_over_the_recipes(compose_pretrain):
    cfg = compose_pretrain("recipe=electra_large", "model=base")
    assert cfg.model.discriminator.hidden_size == 768 and cfg.model.generator_fraction == pytest.approx(1 / 3)
    assert (cfg.global_batch_size, cfg.trainer.max_steps, cfg.masking.mask_prob) == (2048, 400_000, 0.25)
    assert compose_pretrain("recipe=electra_small", "tokenizer=wordpiece").tokenizer.vocab_size == 8192


def test_the_default_run_is_the_tiny_recipe(compose_pretrain):
    cfg = compose_pretrain()
    sizes = dict(hidden_size=128, num_layers=4, num_heads=2, intermediate_size=512, embedding_size=128, dropout=0.0)
    assert {key: cfg.model.discriminator[key] for key in sizes} == sizes
    assert cfg.model.generator_fraction == 0.25
    assert (cfg.tokenizer._target_, cfg.tokenizer.vocab_size) == ("electra_lit.data.train_wordpiece", 8192)
    assert (cfg.optimizer.lr, cfg.lr_schedule.warmup_steps, cfg.masking.mask_prob) == (5e-4, 100, 0.15)
    assert (cfg.trainer.max_steps, cfg.trainer.val_check_interval, cfg.data.max_seq_length) == (1000, 250, 64)
    # replacements sampled at temperature 1.5 (objective=electra_tiny, docs/small_scale.md); the paper's otherwise
    assert (cfg.objective._target_, cfg.objective.temperature) == ("electra_lit.objectives.ReplacedTokenDetection", 1.5)
    assert compose_pretrain("objective=electra").objective.temperature == 1.0
    assert compose_pretrain("recipe=electra_small").objective.temperature == 1.0
    assert "temperature" not in compose_pretrain("objective=mlm").objective
    long = compose_pretrain("recipe=tiny_long")
    assert (long.trainer.max_steps, long.objective.temperature, long.global_batch_size) == (3000, 1.5, 16)
    planned = with_batch_plan(cfg)  # one CPU process: 16 sequences per step
    assert (planned.global_batch_size, planned.data.batch_size, planned.trainer.accumulate_grad_batches) == (16, 16, 1)


# ------------------------------------------------------------------ the plan
@pytest.mark.parametrize(
    "args, plan",
    [
        ((2048, None, 8, 1), (256, 1)),
        ((2048, None, 8, 8), (32, 8)),
        ((2048, 64, 8, 1), (64, 4)),
        ((2048, 64, 8, 4), (64, 4)),
        ((None, 16, 4, 3), (16, 3)),  # no global batch: as given
    ],
)
def test_plan_batch(args, plan):
    assert plan_batch(*args) == plan


@pytest.mark.parametrize(
    "args, message",
    [
        (
            (2048, None, 3, 1),
            "global_batch_size=2048 does not split over 3 device(s) x trainer.accumulate_grad_batches=1; "
            "use global_batch_size=2049 or another device or accumulation count",
        ),
        (
            (256, 48, 8, 1),
            "global_batch_size=256 is not a multiple of data.batch_size=48 x 8 device(s) = 384; "
            "use data.batch_size=32, or data.batch_size=null to derive it",
        ),
        (
            (100, 8, 3, 1),
            "global_batch_size=100 is not a multiple of data.batch_size=8 x 3 device(s) = 24; "
            "use global_batch_size=96, or data.batch_size=null to derive it",
        ),
        (
            (256, 32, 2, 8),
            "trainer.accumulate_grad_batches=8 but global_batch_size=256 with data.batch_size=32 on "
            "2 device(s) needs 4; leave trainer.accumulate_grad_batches=1, it is derived from the other two",
        ),
        (
            (None, None, 1, 1),
            "data.batch_size=null needs global_batch_size to derive it from; set global_batch_size=N "
            "(sequences per optimizer step) or data.batch_size=N (per device)",
        ),
        ((0, None, 1, 1), "global_batch_size=0 must be a positive integer (or null)"),
    ],
)
def test_plan_batch_errors_are_one_line_with_a_fix(args, message):
    with pytest.raises(ConfigError) as err:
        plan_batch(*args)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "trainer, world_size",
    [
        (dict(accelerator="cpu", devices=1), 1),
        (dict(accelerator="cpu", devices="auto"), 1),
        (dict(accelerator="gpu", devices=8, num_nodes=4), 32),
        (dict(accelerator="gpu", devices=[0, 1]), 2),
        (dict(accelerator="gpu", devices="0,1,2"), 3),
        (dict(accelerator="gpu", devices="4"), 4),
        (dict(accelerator="tpu", devices="auto"), None),  # only the Trainer knows
    ],
)
def test_configured_world_size(trainer, world_size):
    assert configured_world_size(OmegaConf.create(trainer)) == world_size


# ------------------------------------------------------------------ old commands
@pytest.mark.slow
def test_a_model_without_a_recipe_is_refused_with_the_recipe_to_add(tmp_path):
    script = Path(sys.executable).parent / "electra-pretrain"
    result = subprocess.run(
        [str(script), f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path}", "model=small"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "electra-pretrain: error: model=small sets only the sizes now; ELECTRA-Small's recipe is "
        "recipe=electra_small (add recipe=tiny to train these sizes with the tiny recipe)"
    )
    assert not (tmp_path / "run").exists()


def test_models_with_a_recipe_or_tiny_pass_the_check():
    for overrides in (
        ["model=small", "recipe=tiny"],
        ["recipe=electra_base", "model=large"],
        ["model=tiny"],
        ["model.discriminator.num_layers=2"],
        ["-m", "recipe=electra_small", "model=small,base"],
    ):
        check_recipe_given(overrides)
    with pytest.raises(ConfigError, match="^model=large sets only the sizes now; ELECTRA-Large's recipe is "):
        check_recipe_given(["-m", "model=tiny,large"])
