"""Hydra composition: every option composes, overrides reach the objects, bad input fails early."""

import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

from conftest import FAST, build
from electra_lit.cli.entry import check_group_choices, config_groups
from electra_lit.config.schema import validate_config
from electra_lit.data.tasks.glue import Task
from electra_lit.errors import ConfigError
from electra_lit.runs.pretrain import train, with_batch_plan


@pytest.mark.parametrize("model", ["small", "base", "large"])
def test_model_options_set_only_sizes(compose_pretrain, model):
    # the training recipe (tokenizer, lr, steps, batch, ...) is recipe=...'s: tests/test_recipes.py
    default, sized = compose_pretrain(), compose_pretrain(f"model={model}")
    validate_config(with_batch_plan(sized))
    assert sized.model.discriminator != default.model.discriminator
    for node in (sized, default):
        with open_dict(node):
            del node.model
    assert sized == default


def count_discriminator_parameters(cfg, vocab_size=30522):
    from electra_lit.models import Discriminator, EncoderConfig

    with torch.device("meta"):
        disc = Discriminator(EncoderConfig(vocab_size=vocab_size, **cfg.model.discriminator))
    return sum(p.numel() for p in disc.parameters())


@pytest.mark.parametrize("model, published", [("small", 13.55e6), ("base", 109.5e6)])
def test_parameter_counts_match_the_published_discriminators(compose_pretrain, model, published):
    # published: transformers.ElectraForPreTraining of google/electra-{small,base}-discriminator
    assert abs(count_discriminator_parameters(compose_pretrain(f"model={model}")) / published - 1) < 0.02


def test_command_line_choices_reach_the_objects(compose_pretrain):
    cfg = compose_pretrain(
        "model=small",
        "tokenizer=bert_uncased",
        "masking.mask_prob=0.25",
        *FAST[:-3],
        "data.num_workers=0",
        "data.max_seq_length=64",
        "data.batch_size=4",
    )
    tokenizer, datamodule, module = build(cfg)
    assert datamodule.collator.mask_prob == 0.25
    assert datamodule.collator.max_predictions == int((0.25 + 0.005) * 64)
    assert module.main_model.encoder.config.vocab_size == 30522
    assert module.objective.disc_weight == 50.0
    assert module.generator.encoder.embeddings is module.main_model.encoder.embeddings


@pytest.mark.slow
def test_fast_dev_run(compose_pretrain, tmp_path):
    cfg = compose_pretrain(*FAST, "+trainer.fast_dev_run=2")
    metrics = train(cfg)
    assert metrics["train/loss"] > 0 and "val/loss" in metrics
    assert (tmp_path / "run" / "config.yaml").is_file()


@pytest.mark.slow
def test_every_group_option_composes(compose_pretrain):
    for group, options in config_groups().items():
        for option in options:
            if group == "trainer" and option == "default":
                continue  # the shared base of the trainer options
            if group == "task":  # fine-tuning's group
                with initialize_config_module("electra_lit.conf", version_base="1.3"):
                    cfg = compose("finetune", overrides=[f"task={option}", "run_dir=x", "init_from=x"])
                assert Task.from_config(OmegaConf.to_container(cfg.task, resolve=True)).name == option
                continue
            cfg = compose_pretrain(f"{group}={option}")
            if group in ("logger", "callbacks") and cfg.get(group):
                for name, node in cfg[group].items():
                    assert "_target_" in node, f"{group}={option}: {name} has no _target_"


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("value", ["1.5", "0", "-0.1", "1.0"])
def test_mask_prob_outside_0_1(compose_pretrain, value):
    with pytest.raises(ConfigError, match=rf"^masking.mask_prob={float(value)} is outside \(0, 1\)"):
        validate_config(compose_pretrain(f"masking.mask_prob={value}"))


def test_sequence_longer_than_positions(compose_pretrain):
    with pytest.raises(ConfigError, match=r"^data.max_seq_length=1024 must be in \[8, 512\]"):
        validate_config(compose_pretrain("data.max_seq_length=1024"))


def test_other_bad_values(compose_pretrain):
    with pytest.raises(ConfigError, match="model.discriminator=\\['hiden_size'\\] has unknown keys"):
        validate_config(compose_pretrain("+model.discriminator.hiden_size=3"))
    with pytest.raises(ConfigError, match="^model.generator_fraction=2.0 must be in \\(0, 1\\]; the paper uses 1/4"):
        validate_config(compose_pretrain("model.generator_fraction=2"))
    with pytest.raises(ConfigError, match="^model.embedding_sharing='tied' is not one of shared, untied, all, gdes$"):
        validate_config(compose_pretrain("model.embedding_sharing=tied"))
    with pytest.raises(ConfigError, match="trainer.max_steps=-1 must be a positive integer"):
        validate_config(compose_pretrain("trainer.max_steps=-1"))
    with pytest.raises(
        ConfigError, match="^data.packing=greedy is not a packing mode; choose one of: document, packed$"
    ):
        validate_config(compose_pretrain("data.packing=greedy"))
    with pytest.raises(ConfigError, match=r"^data.short_seq_prob=1.5 is outside \[0, 1\]$"):
        validate_config(compose_pretrain("data.short_seq_prob=1.5"))


def test_each_rule_is_checked_once_where_its_keys_live(compose_pretrain):
    with pytest.raises(ConfigError, match=r"^model.discriminator.hidden_size=128 is not divisible by num_heads=3$"):
        validate_config(compose_pretrain("model.discriminator.num_heads=3"))
    with pytest.raises(
        ConfigError, match=r"^masking.max_predictions=200 must be null or in \[1, data.max_seq_length=64\]$"
    ):
        validate_config(compose_pretrain("masking.max_predictions=200"))  # the tiny recipe's 64 tokens
    with pytest.raises(ConfigError, match=r"^float32_matmul_precision=low is not one of: highest, high, medium$"):
        validate_config(compose_pretrain("float32_matmul_precision=low"))
    with pytest.raises(
        ConfigError,
        match=r"^batch_tokens=131072 was replaced by global_batch_size \(sequences per "
        r"optimizer step\): use global_batch_size=2048$",  # of the tiny recipe's 64-token sequences
    ):
        validate_config(compose_pretrain("batch_tokens=131072"))
    with pytest.raises(ConfigError, match=r"^lr_schedule.warmup_steps=-1 must be a non-negative integer$"):
        validate_config(compose_pretrain("lr_schedule.warmup_steps=-1"))
    schema = validate_config(compose_pretrain("model.generator={hidden_size:64}"))
    assert schema.model.generator_sizes().hidden_size == 64 and schema.masking.predictions(128) == 19


def test_a_collator_built_in_code_gets_the_configs_check_and_message():
    from electra_lit.data import MaskingCollator, SpecialTokenIds

    special = SpecialTokenIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    with pytest.raises(ConfigError, match=r"^masking.mask_prob=1.5 is outside \(0, 1\)"):
        MaskingCollator(special_token_ids=special, max_seq_length=128, mask_prob=1.5)
    with pytest.raises(
        ConfigError, match=r"^masking.max_predictions=200 must be null or in \[1, data.max_seq_length=128\]$"
    ):
        MaskingCollator(special_token_ids=special, max_seq_length=128, max_predictions=200)


def test_hydra_refuses_unknown_keys_and_wrong_types_itself(compose_pretrain):
    from hydra.errors import ConfigCompositionException

    for override in ("masking.mask_rate=0.2", "data.batch_size=many", "model.discriminator.num_layers=1.5", "seed=x"):
        with pytest.raises(ConfigCompositionException):
            compose_pretrain(override)
    cfg = compose_pretrain("+trainer.fast_dev_run=2", "objective.disc_weight=10")  # open nodes take their class's keys
    assert cfg.trainer.fast_dev_run == 2 and cfg.objective.disc_weight == 10


def test_every_entry_point_composes_with_its_schema():
    from electra_lit.config.schema import SCHEMAS

    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        for name, schema in SCHEMAS.items():
            cfg = compose(
                name, overrides=["init_from=x"] if name == "finetune" else ["out_dir=x"] if "_" in name else []
            )
            assert OmegaConf.get_type(cfg) is schema, name


def test_missing_checkpoint_fails_before_building_anything(compose_pretrain, tmp_path):
    with pytest.raises(ConfigError, match="^ckpt_path=.*nothing.ckpt: no such file"):
        train(compose_pretrain(f"ckpt_path={tmp_path / 'nothing.ckpt'}"))
    assert not (tmp_path / "run").exists()


def test_unknown_group_option_lists_the_choices():
    with pytest.raises(
        ConfigError,
        match="^model=huge: no such option in config group 'model'; choose one of: base, large, small, tiny$",
    ):
        check_group_choices(["model=huge"])
    with pytest.raises(ConfigError, match="^trainer=tpuv5:"):
        check_group_choices(["trainer=cpu,tpuv5"])
    check_group_choices(["model=small,base", "masking.mask_prob=0.2", "logger=null", "+foo=bar"])


@pytest.mark.parametrize(
    "override, refused",
    [
        ("+model@extra=huge", "model=huge"),  # a group added at another package
        ("model=choice(small,huge)", "model=huge"),  # a sweep in Hydra's function syntax
        ("model=glob(xx*)", "model=glob(xx*): matches no option"),  # a glob that picks nothing
        ("~model", None),  # deleting a group's choice is Hydra's business
        ("model=glob(s*)", None),
        ("model=range(1,2)", "model=1"),
    ],
)
def test_group_options_are_read_with_hydras_own_grammar(override, refused):
    if refused is None:
        check_group_choices([override])
        return
    with pytest.raises(ConfigError, match="^" + refused.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        check_group_choices([override])


@pytest.mark.slow
def test_cli_bad_input_is_one_line_before_training(tmp_path):
    for args, expected in [
        (["model=huge"], "model=huge: no such option in config group 'model'; choose one of: base, large, small, tiny"),
        (["masking.mask_prob=1.5"], "masking.mask_prob=1.5 is outside (0, 1)"),
        (["masking.mask_prob=abc"], "masking.mask_prob=abc: Value 'abc' of type 'str' could not be converted to Float"),
        (
            ["masking.mask_rate=0.2"],
            "Could not override 'masking.mask_rate'. To append to your config use "
            "+masking.mask_rate=0.2: Key 'mask_rate' not in 'MaskingConfig'",
        ),
        (["data.corpus.paths=/no/such/corpus"], "data.corpus.paths: '/no/such/corpus' is no file or folder"),
    ]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "electra_lit.cli.pretrain",
                f"run_dir={tmp_path / 'run'}",
                f"cache_dir={tmp_path}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("electra-pretrain: error:")]
        assert len(errors) == 1 and expected in errors[0], result.stderr
        assert not (tmp_path / "run" / "checkpoints").exists()


def test_run_names_are_short_stable_and_distinct():
    from electra_lit.runs.naming import run_name

    assert run_name("") == "default"
    assert run_name("data.corpus.paths=/data/books,model=small") == "data.corpus.paths=_data_books,model=small"
    long_a = ",".join(f"model.discriminator.key{i}={i}" for i in range(20)) + ",seed=1"
    long_b = long_a.replace("seed=1", "seed=2")
    assert len(run_name(long_a)) <= 120 and run_name(long_a) == run_name(long_a)
    assert run_name(long_a) != run_name(long_b)


DISC_METRICS = ["disc_auc", "disc_gain", "disc_precision", "disc_recall", "disc_f1", "disc_acc", "replaced_frac"]


@pytest.mark.parametrize(
    "objective, logged",
    [
        ("electra", {"gen_loss", "disc_loss", "gen_acc", *DISC_METRICS}),
        ("electra_15", {"gen_loss", "disc_loss", "gen_acc", *DISC_METRICS}),
        ("mlm", {"mlm_loss", "mlm_acc"}),
        ("replace_mlm", {"gen_loss", "mlm_loss", "gen_acc", "mlm_acc"}),
        ("all_tokens_mlm", {"gen_loss", "mlm_loss", "gen_acc", "mlm_acc"}),
    ],
)
@pytest.mark.slow
def test_each_objective_is_one_override_away(compose_pretrain, objective, logged):
    cfg = compose_pretrain(*FAST, f"objective={objective}", "trainer.max_steps=2", "trainer.val_check_interval=2")
    metrics = train(cfg)
    for stage in ("train", "val"):
        assert {k.split("/", 1)[1] for k in metrics if k.startswith(f"{stage}/")} - {"lr"} == logged | {"loss"}


def test_mlm_objective_uses_berts_masking_and_no_generator(compose_pretrain):
    _, datamodule, module = build(compose_pretrain(*FAST, "objective=mlm"))
    assert (datamodule.collator.mask_token_prob, datamodule.collator.random_token_prob) == (0.8, 0.1)
    assert module.generator is None
    assert module.main_model.encoder.config.hidden_size == 64  # the discriminator's size


def test_sharing_and_generator_size_errors_are_config_errors(compose_pretrain):
    with pytest.raises(ConfigError, match="^model.embedding_sharing='all' shares every weight"):
        validate_config(compose_pretrain("model.embedding_sharing=all"))
    validate_config(compose_pretrain("model.embedding_sharing=all", "model.generator_fraction=1.0"))
    with pytest.raises(ConfigError, match="^model: generator hidden_size=512 is larger than the discriminator's 128"):
        validate_config(compose_pretrain("model.generator={hidden_size:512}"))
    with pytest.raises(
        ConfigError, match="^masking.random_token_prob=0.2 must be in \\[0, 1 - masking.mask_token_prob = 0.15\\]"
    ):
        validate_config(compose_pretrain("masking.random_token_prob=0.2"))
