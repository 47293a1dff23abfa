"""ELECTRA's released fine-tuning recipe, one switch each: the metric a task enters the GLUE
average with, both sentence orders, STS-B's target scale, the LR curve and weight decay."""

import csv
import json
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from electra_lit.data.tasks.datamodule import TaskDataModule
from electra_lit.data.tasks.glue import Example, Task, with_both_orders
from electra_lit.errors import ConfigError
from electra_lit.lit.modules.classifier import ElectraClassifierModule, finetune_lr_lambda
from electra_lit.models import Encoder, EncoderConfig
from electra_lit.optim import FinetuneOptimizerConfig, electra_lr_lambda, layerwise_lr_groups
from electra_lit.runs.finetune import finetune, paper_optimizer
from electra_lit.runs.glue_table import collect, markdown, write_csv

TINY = dict(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, embedding_size=8)


def composed(*overrides):
    """The finetune config; init_from is only read by a run, so a placeholder stands in unless given."""
    given = any(o.startswith("init_from=") for o in overrides)
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("finetune", overrides=[*([] if given else ["init_from=none"]), *overrides])


def task_of(*overrides) -> Task:
    return Task.from_config(OmegaConf.to_container(composed(*overrides).task, resolve=True))


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")


# ------------------------------------------------------------------ 1. the GLUE average's metric
def test_mrpc_and_qqp_average_accuracy_and_pick_the_epoch_by_f1():
    for name in ("mrpc", "qqp"):
        task = task_of(f"task={name}")
        assert (task.metric, task.average_metric, task.averaged) == ("f1", "accuracy", "accuracy")
    assert task_of("task=sst2").averaged == "accuracy" and task_of("task=cola").averaged == "mcc"
    assert task_of("task=mrpc", "task.average_metric=null").averaged == "f1"  # the switch off
    with pytest.raises(ConfigError, match=r"^task.average_metric=mcc is not among task.metrics=\['f1', 'accuracy'\]"):
        task_of("task=mrpc", "task.average_metric=mcc")


def test_glue_table_averages_accuracy_and_still_shows_f1(tmp_path):
    def result(model, task, metrics, seed, metric, average_metric=None):
        path = tmp_path / model / f"{task}-{seed}" / "results.json"
        path.parent.mkdir(parents=True)
        r = {"task": task, "metric": metric, "metrics": metrics, "init_from": model, "seed": seed}
        path.write_text(json.dumps(r | ({"average_metric": average_metric} if average_metric else {})))

    for seed, (f1, accuracy) in enumerate([(0.90, 0.80), (0.92, 0.84), (0.88, 0.82)]):
        result("electra", "mrpc", {"f1": f1, "accuracy": accuracy}, seed, "f1", "accuracy")
    result("electra", "qqp", {"f1": 0.70, "accuracy": 0.76}, 0, "f1", "accuracy")
    result("electra", "sst2", {"accuracy": 0.90}, 0, "accuracy", "accuracy")
    result("old", "mrpc", {"f1": 0.90, "accuracy": 0.80}, 0, "f1")  # a results.json from before the switch
    results = collect([tmp_path])
    lines = markdown(results).splitlines()
    assert lines[0] == "| model | SST-2 | MRPC | QQP | GLUE avg |"
    # medians 82.0 (accuracy) and 90.0 (F1); the average: (90 + 82 + 76) / 3
    assert "| electra | 90.0 | 82.0 (F1 90.0) | 76.0 (F1 70.0) | 82.7 |" in lines
    assert "| old | - | 90.0 | - | 90.0 |" in lines  # no average_metric: its main metric
    assert lines[-1].endswith("average without WNLI; MRPC by acc (F1 in brackets); QQP by acc (F1 in brackets).")
    write_csv(results, tmp_path / "all.csv")
    rows = list(csv.DictReader(open(tmp_path / "all.csv")))
    mrpc = next(r for r in rows if r["model"] == "electra" and r["task"] == "mrpc")
    assert (mrpc["metric"], mrpc["average_metric"]) == ("f1", "accuracy")
    assert float(mrpc["value"]) == 0.90 and float(mrpc["average_value"]) == 0.80


# ------------------------------------------------------------------ 2. both sentence orders
def test_both_orders_doubles_the_train_split_only(tmp_path, bert_tokenizer):
    pairs = [Example(("a house", "a family"), 1, "0"), Example(("the ball", "her sister"), 0, "1")]
    assert [e.texts for e in with_both_orders(pairs)] == [
        ("a house", "a family"),
        ("the ball", "her sister"),
        ("a family", "a house"),
        ("her sister", "the ball"),
    ]
    assert [e.label for e in with_both_orders(pairs)] == [1, 0, 1, 0]

    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    rows = [(i % 2, i, i, f"the house {i}", "a family") for i in range(6)]
    for split in ("train", "dev"):
        write_tsv(tmp_path / f"{split}.tsv", header, rows)
    write_tsv(tmp_path / "test.tsv", ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"], rows[:3])

    def datamodule(*overrides):
        dm = TaskDataModule(task_of("task=mrpc", *overrides), bert_tokenizer, data_dir=str(tmp_path))
        dm.setup("fit")
        return dm

    doubled, single = datamodule(), datamodule("task.both_orders=false")
    assert len(single.train_set) == 6 and len(doubled.train_set) == 12
    sep = single.special.sep
    first, swapped = doubled.train_set[0], doubled.train_set[6]
    a, b = first["input_ids"][1:-1], swapped["input_ids"][1:-1]
    cut_a, cut_b = a.index(sep), b.index(sep)
    assert (b[:cut_b], b[cut_b + 1 :]) == (a[cut_a + 1 :], a[:cut_a])  # [CLS] b [SEP] a [SEP]
    assert swapped["label"] == first["label"]
    assert doubled.val_sets == single.val_sets and len(doubled.val_sets[0]) == 6
    assert doubled.test_sets == single.test_sets and len(doubled.test_sets[0]) == 3
    assert task_of("task=stsb").both_orders and not task_of("task=qqp").both_orders
    with pytest.raises(
        ConfigError, match=r"^task.both_orders=true needs two text columns, task sst2 has \['sentence'\]"
    ):
        task_of("task=sst2", "task.both_orders=true")


# ------------------------------------------------------------------ 3. STS-B's target scale
def test_stsb_learns_scores_over_5_and_predicts_in_the_labels_units():
    assert task_of("task=stsb").target_scale == 0.2
    module = ElectraClassifierModule(
        asdict(EncoderConfig(**TINY)), num_labels=1, metrics=["spearman"], target_scale=0.2
    )
    outputs, labels = torch.tensor([0.2, 0.9, 0.5]), torch.tensor([1.0, 4.5, 2.0])
    assert module._loss(outputs, labels) == pytest.approx(float(F.mse_loss(outputs, labels / 5)))
    assert module.predictions(outputs).tolist() == pytest.approx([1.0, 4.5, 2.5])
    with pytest.raises(
        ConfigError, match=r"^task.target_scale=0.2 scales regression targets, and task sst2 has labels"
    ):
        task_of("task=sst2", "task.target_scale=0.2")
    with pytest.raises(ConfigError, match=r"^task.target_scale=0 must be positive"):
        task_of("task=stsb", "task.target_scale=0")


def test_stsb_submission_file_is_in_the_labels_units(tmp_path, tiny_checkpoint):
    header = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]
    root = tmp_path / "stsb"
    for split in ("train", "dev"):
        rows = [(i, "g", "f", 2012, i, "s", "s", f"a house {i}", "a family", i % 5 + 0.5) for i in range(16)]
        write_tsv(root / f"{split}.tsv", [*header, "score"], rows)
    write_tsv(
        root / "test.tsv", header, [(i, "g", "f", 2012, i, "s", "s", f"the ball {i}", "a family") for i in range(5)]
    )
    cfg = composed(
        "task=stsb",
        f"task.data_dir={root}",
        f"init_from={tiny_checkpoint}",
        "task.epochs=1",
        f"run_dir={tmp_path / 'run'}",
        "batch_size=16",
    )
    results = finetune(cfg)
    assert results["average_metric"] == "spearman" and set(results["metrics"]) == {"spearman", "pearson"}

    best = ElectraClassifierModule.load_from_checkpoint(
        tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=False
    )
    assert best.hparams.target_scale == 0.2
    task = Task.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    dm = TaskDataModule(task, best_tokenizer(cfg), data_dir=str(root))
    dm.setup("fit")
    assert len(dm.train_set) == 32  # both orders
    best.eval()
    with torch.no_grad():
        raw = torch.cat([best(batch) for batch in dm.test_dataloaders()[0]])
    written = [
        float(line.split("\t")[1])
        for line in (tmp_path / "run" / "predictions" / "STS-B.tsv").read_text().splitlines()[1:]
    ]
    assert written == pytest.approx((raw * 5).tolist(), abs=1e-4)


def best_tokenizer(cfg):
    from electra_lit.pretrained import load_pretrained_encoder

    return load_pretrained_encoder(cfg.init_from, cfg.tokenizer_vocab).tokenizer


# ------------------------------------------------------------------ 4. the LR curve
def test_released_lr_curve_multiplies_warmup_and_decay():
    released, sequential = finetune_lr_lambda("released", 100, 0.1), finetune_lr_lambda("sequential", 100, 0.1)
    pretraining = electra_lr_lambda(100, 10)
    for step in (0, 1, 5, 10, 50, 99, 100):
        assert released(step) == pytest.approx((1 - step / 100) * min(1, step / 10))
        assert released(step) == pretraining(step)
    assert max(released(t) for t in range(101)) == pytest.approx(0.9)  # at the warmup's end, 1 - 10/100
    assert sequential(10) == 1.0 and sequential(55) == pytest.approx(0.5)  # up to lr, then down to 0
    with pytest.raises(ConfigError, match=r"^optimizer.lr_curve='cosine' is not one of released, sequential"):
        FinetuneOptimizerConfig(lr_curve="cosine")


@pytest.mark.parametrize(
    "overrides, curve, weight_decay",
    [((), "released", 0.01), (("optimizer.lr_curve=sequential", "optimizer.weight_decay=0"), "sequential", 0.0)],
)
def test_the_module_uses_the_configured_curve_and_weight_decay(overrides, curve, weight_decay):
    cfg = composed(*overrides)
    optimizer = paper_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True), TINY["hidden_size"])
    assert (optimizer["lr_curve"], optimizer["weight_decay"]) == (curve, weight_decay)
    module = ElectraClassifierModule(
        asdict(EncoderConfig(**TINY)), num_labels=2, metrics=["accuracy"], optimizer=optimizer
    )
    module._trainer = SimpleNamespace(estimated_stepping_batches=100)
    configured = module.configure_optimizers()
    factor = configured["lr_scheduler"]["scheduler"].lr_lambdas[0]
    expected = finetune_lr_lambda(curve, 100, 0.1)
    assert [factor(t) for t in range(101)] == [expected(t) for t in range(101)]
    assert {g["weight_decay"] for g in configured["optimizer"].param_groups} == {weight_decay, 0.0}


# ------------------------------------------------------------------ 5. weight decay
def test_weight_decay_skips_layernorm_and_biases_at_every_depth():
    encoder, head = Encoder(EncoderConfig(**TINY)), torch.nn.Linear(16, 2)
    groups = layerwise_lr_groups(encoder, head, lr=1e-3, decay=0.8, weight_decay=0.01)
    norms = {id(p) for m in encoder.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    names = {id(p): n for n, p in torch.nn.ModuleList([encoder, head]).named_parameters()}
    for group in groups:
        for p in group["params"]:
            skipped = id(p) in norms or names[id(p)].endswith("bias")
            assert group["weight_decay"] == (0.0 if skipped else 0.01), names[id(p)]
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(names)  # each parameter once
    # per depth (embeddings, layer 0, layer 1, head), decayed and not, at the layer-wise LR
    assert [g["lr"] for g in groups] == pytest.approx([1e-3 * 0.8**e for e in (4, 4, 3, 3, 2, 2, 0, 0)])
    assert groups[-2]["params"] == [head.weight] and groups[-1]["params"] == [head.bias]
    assert FinetuneOptimizerConfig().weight_decay == 0.01
    with pytest.raises(ConfigError, match=r"^optimizer.weight_decay=-0.1 must be non-negative"):
        FinetuneOptimizerConfig(weight_decay=-0.1)
