"""Fine-tuning: layer-wise LR, learning a task, GLUE layouts, metrics, results, the table, bad input."""

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from electra_lit.errors import ConfigError
from electra_lit.lit.modules.classifier import task_metrics
from electra_lit.models import Encoder, EncoderConfig
from electra_lit.optim import layerwise_lr_groups
from electra_lit.runs.finetune import finetune
from electra_lit.runs.glue_table import collect, markdown

WORDS = "she said that the house was quite large and very pleasant for the family".split()


def sentence(rng, keyword):
    words = rng.sample(WORDS, 8)
    words.insert(rng.randrange(9), keyword)
    return " ".join(words)


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def sst2_dir(root, n_train=400, n_dev=100, n_test=10):
    """SST-2 layout; the label is which keyword the sentence holds: separable."""
    rng = random.Random(0)
    for split, n in (("train", n_train), ("dev", n_dev)):
        labels = [rng.randrange(2) for _ in range(n)]
        write_tsv(
            root / f"{split}.tsv",
            ["sentence", "label"],
            [(sentence(rng, "excellent" if y else "dreadful"), y) for y in labels],
        )
    if n_test:
        write_tsv(
            root / "test.tsv",
            ["index", "sentence"],
            [(i, sentence(rng, "excellent" if i % 2 else "dreadful")) for i in range(n_test)],
        )
    return root


def compose_finetune(tmp_path, *overrides):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("finetune", overrides=[f"run_dir={tmp_path / 'run'}", "batch_size=16", *overrides])


# ------------------------------------------------------------------ optimisation
@pytest.mark.parametrize("rule, exponents", [("released", [4, 3, 2, 0]), ("intended", [3, 2, 1, 0])])
def test_layerwise_lr_groups(rule, exponents):
    encoder = Encoder(
        EncoderConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, embedding_size=8)
    )
    head = torch.nn.Linear(16, 2)
    groups = layerwise_lr_groups(encoder, head, lr=1e-3, decay=0.8, rule=rule, weight_decay=0.0)
    # embeddings (with the projection), layer 0, layer 1 (the top), head: each its decayed
    # parameters, then its LayerNorm weights and biases (tests/test_glue_switches.py)
    by_depth = [groups[i : i + 2] for i in range(0, len(groups), 2)]
    assert [g["lr"] for g, _ in by_depth] == pytest.approx([1e-3 * 0.8**e for e in exponents])
    assert all(g["lr"] == h["lr"] for g, h in by_depth)
    assert by_depth[0][1]["params"][-1] is encoder.embeddings_project.bias
    assert {id(p) for g in by_depth[2] for p in g["params"]} == {id(p) for p in encoder.layers[1].parameters()}
    assert by_depth[3][0]["params"] + by_depth[3][1]["params"] == list(head.parameters())
    assert all(g["weight_decay"] == 0.0 for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(list(encoder.parameters())) + 2


# ------------------------------------------------------------------ learning and results
@pytest.mark.slow
def test_tiny_model_learns_a_separable_task(tmp_path, tiny_checkpoint):
    data = sst2_dir(tmp_path / "sst2")
    results = finetune(
        compose_finetune(
            tmp_path, "task=sst2", f"task.data_dir={data}", f"init_from={tiny_checkpoint}", "task.epochs=6"
        )
    )
    assert results["task"] == "sst2" and results["metric"] == "accuracy"
    assert results["metrics"]["accuracy"] >= 0.95
    assert results["metrics"]["accuracy"] == max(e["accuracy"] for e in results["epochs"])
    assert results["best_epoch"] == max(results["epochs"], key=lambda e: e["accuracy"])["epoch"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["metrics"] == results["metrics"]
    rows = (tmp_path / "run" / "predictions" / "SST-2.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 11
    assert sum(r.split("\t")[1] == str(i % 2) for i, r in enumerate(rows[1:])) >= 9


def test_mnli_has_two_dev_sets_and_named_predictions(tmp_path, tiny_checkpoint):
    header = [
        "index",
        "promptID",
        "pairID",
        "genre",
        "sentence1_binary_parse",
        "sentence2_binary_parse",
        "sentence1_parse",
        "sentence2_parse",
        "sentence1",
        "sentence2",
        "label1",
        "gold_label",
    ]
    labels = ["entailment", "neutral", "contradiction"]
    root = tmp_path / "mnli"
    for split in ("train", "dev_matched", "dev_mismatched"):
        write_tsv(
            root / f"{split}.tsv",
            header,
            [
                (i, 0, 0, "fiction", "", "", "", "", "a house", "a family", labels[i % 3], labels[i % 3])
                for i in range(12)
            ],
        )
    for split in ("test_matched", "test_mismatched"):
        write_tsv(
            root / f"{split}.tsv",
            header[:10],
            [(i, 0, 0, "fiction", "", "", "", "", "a house", "a family") for i in range(5)],
        )
    results = finetune(
        compose_finetune(
            tmp_path, "task=mnli", f"task.data_dir={root}", f"init_from={tiny_checkpoint}", "task.epochs=1"
        )
    )
    assert set(results["metrics"]) == {"accuracy", "accuracy_mm"}
    for name in ("MNLI-m", "MNLI-mm"):
        rows = (tmp_path / "run" / "predictions" / f"{name}.tsv").read_text().splitlines()
        assert len(rows) == 6 and all(r.split("\t")[1] in labels for r in rows[1:])


def test_stsb_is_a_regression_and_cola_reads_headerless_files(tmp_path, tiny_checkpoint):
    header = [
        "index",
        "genre",
        "filename",
        "year",
        "old_index",
        "source1",
        "source2",
        "sentence1",
        "sentence2",
        "score",
    ]
    root = tmp_path / "stsb"
    for split in ("train", "dev"):
        write_tsv(
            root / f"{split}.tsv",
            header,
            [(i, "g", "f", 2012, i, "s", "s", "a house", "a family", i % 5 + 0.5) for i in range(16)],
        )
    results = finetune(
        compose_finetune(
            tmp_path, "task=stsb", f"task.data_dir={root}", f"init_from={tiny_checkpoint}", "task.epochs=1"
        )
    )
    assert set(results["metrics"]) == {"spearman", "pearson"}

    cola = tmp_path / "cola"
    for split in ("train", "dev"):  # GLUE's CoLA train/dev have no header row
        write_tsv(cola / f"{split}.tsv", None, [("gj04", i % 2, "", f"the house was large {i}") for i in range(16)])
    results = finetune(
        compose_finetune(
            tmp_path,
            "task=cola",
            f"task.data_dir={cola}",
            f"init_from={tiny_checkpoint}",
            "task.epochs=1",
            f"run_dir={tmp_path / 'cola_run'}",
        )
    )
    assert set(results["metrics"]) == {"mcc", "accuracy"}


def test_local_jsonl_and_csv_files(tmp_path, tiny_checkpoint):
    rng = random.Random(1)
    rows = [
        {"sentence1": sentence(rng, "excellent"), "sentence2": "the family", "label": "entailment"} for _ in range(8)
    ]
    rows += [
        {"sentence1": sentence(rng, "dreadful"), "sentence2": "the house", "label": "not_entailment"} for _ in range(8)
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "dev.csv").write_text(
        "sentence1,sentence2,label\n" + "".join(f"{r['sentence1']},{r['sentence2']},{r['label']}\n" for r in rows)
    )
    results = finetune(
        compose_finetune(
            tmp_path,
            "task=rte",
            f"init_from={tiny_checkpoint}",
            "task.epochs=1",
            f"task.files={{train: {tmp_path / 'train.jsonl'}, dev: {tmp_path / 'dev.csv'}}}",
        )
    )
    assert 0 <= results["metrics"]["accuracy"] <= 1


def test_finetune_from_a_transformers_folder(tmp_path, tiny_checkpoint):
    from electra_lit.hf import export_checkpoint as export

    export(str(tiny_checkpoint), str(tmp_path / "hf"))
    data = sst2_dir(tmp_path / "sst2", n_train=32, n_dev=16, n_test=0)
    results = finetune(
        compose_finetune(
            tmp_path, f"task.data_dir={data}", f"init_from={tmp_path / 'hf' / 'discriminator'}", "task.epochs=1"
        )
    )
    assert "accuracy" in results["metrics"]


@pytest.mark.slow
def test_cli_interface_writes_results(tmp_path, tiny_checkpoint):
    data = sst2_dir(tmp_path / "sst2", n_train=32, n_dev=16, n_test=0)
    script = Path(sys.executable).parent / "electra-finetune"
    result = subprocess.run(
        [
            str(script),
            "task=sst2",
            f"task.data_dir={data}",
            f"init_from={tiny_checkpoint}",
            f"run_dir={tmp_path / 'out'}",
            "task.epochs=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["task"] == "sst2" and "accuracy" in results["metrics"] and results["best_epoch"] == 0


# ------------------------------------------------------------------ metrics
def test_task_metrics_equal_independent_computations():
    preds = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1]
    target = [1, 0, 0, 1, 0, 1, 1, 0, 1, 0]
    tp = sum(p == t == 1 for p, t in zip(preds, target))
    tn = sum(p == t == 0 for p, t in zip(preds, target))
    fp = sum(p == 1 and t == 0 for p, t in zip(preds, target))
    fn = sum(p == 0 and t == 1 for p, t in zip(preds, target))
    values = task_metrics(["accuracy", "f1", "mcc"], 2)(torch.tensor(preds), torch.tensor(target))
    assert float(values["accuracy"]) == pytest.approx((tp + tn) / 10)
    assert float(values["f1"]) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert float(values["mcc"]) == pytest.approx(mcc, abs=1e-6)

    x = [0.5, 2.0, 1.0, 4.0, 3.5, 0.1]
    y = [1.0, 2.5, 0.5, 4.5, 3.0, 0.2]
    values = task_metrics(["spearman", "pearson"], 1)(torch.tensor(x), torch.tensor(y))
    mx, my = sum(x) / 6, sum(y) / 6
    pearson = sum((a - mx) * (b - my) for a, b in zip(x, y)) / math.sqrt(
        sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)
    )
    rank = lambda v: [sorted(v).index(a) + 1 for a in v]  # noqa: E731  (no ties here)
    d2 = sum((a - b) ** 2 for a, b in zip(rank(x), rank(y)))
    assert float(values["pearson"]) == pytest.approx(pearson, abs=1e-5)
    assert float(values["spearman"]) == pytest.approx(1 - 6 * d2 / (6 * 35), abs=1e-5)


# ------------------------------------------------------------------ the table
def test_glue_table_from_result_files(tmp_path):
    def result(model, task, metric, value, seed):
        path = tmp_path / model / f"{task}-{seed}" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(
            json.dumps({"task": task, "metric": metric, "metrics": {metric: value}, "init_from": model, "seed": seed})
        )

    for seed, (cola, sst2) in enumerate([(0.50, 0.90), (0.60, 0.80), (0.55, 0.85)]):
        result("electra", "cola", "mcc", cola, seed)
        result("electra", "sst2", "accuracy", sst2, seed)
    result("electra", "wnli", "accuracy", 0.10, 0)
    result("bert", "sst2", "accuracy", 0.70, 0)
    results = collect([tmp_path])
    assert len(results) == 8
    lines = markdown(results).splitlines()
    assert lines[0] == "| model | CoLA | SST-2 | WNLI | GLUE avg |"
    assert "| electra | 55.0 | 85.0 | 10.0 | 70.0 |" in lines  # medians; WNLI not averaged
    assert "| bert | - | 70.0 | - | 70.0 |" in lines


# ------------------------------------------------------------------ bad input
def test_bad_input_names_file_row_and_column(tmp_path, tiny_checkpoint):
    def run(*overrides):
        return finetune(compose_finetune(tmp_path, f"init_from={tiny_checkpoint}", *overrides))

    bad_label = tmp_path / "bad_label"
    write_tsv(bad_label / "train.tsv", ["sentence", "label"], [("a house", 0), ("a family", 3)])
    write_tsv(bad_label / "dev.tsv", ["sentence", "label"], [("a house", 0)])
    with pytest.raises(
        ConfigError, match=r"bad_label/train.tsv, row 2: label '3' is not one of task sst2's labels \['0', '1'\]"
    ):
        run(f"task.data_dir={bad_label}")

    no_column = tmp_path / "no_column"
    write_tsv(no_column / "train.tsv", ["text", "label"], [("a house", 0)])
    write_tsv(no_column / "dev.tsv", ["text", "label"], [("a house", 0)])
    with pytest.raises(ConfigError, match="no_column/train.tsv: no column 'sentence'; the columns are: text, label"):
        run(f"task.data_dir={no_column}")

    empty = tmp_path / "empty"
    write_tsv(empty / "train.tsv", ["sentence", "label"], [("a house", 0)])
    write_tsv(empty / "dev.tsv", ["sentence", "label"], [])
    with pytest.raises(ConfigError, match="empty/dev.tsv: the split is empty"):
        run(f"task.data_dir={empty}")

    with pytest.raises(ConfigError, match="nowhere/train.tsv does not exist"):
        run(f"task.data_dir={tmp_path / 'nowhere'}")

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhouse\n")
    with pytest.raises(ConfigError, match="the tokenizer has 6 tokens but the encoder .* was trained with 8192"):
        run(f"task.data_dir={empty}", f"tokenizer_vocab={vocab}")

    with pytest.raises(ConfigError, match="^init_from is required"):
        finetune(compose_finetune(tmp_path, f"task.data_dir={empty}"))


@pytest.mark.slow
def test_multirun_over_tasks_and_seeds_then_the_table(tmp_path, tiny_checkpoint):
    glue = tmp_path / "glue_data"
    sst2_dir(glue / "SST-2", n_train=32, n_dev=16, n_test=0)
    rng = random.Random(2)
    for split in ("train", "dev"):
        write_tsv(
            glue / "RTE" / f"{split}.tsv",
            ["index", "sentence1", "sentence2", "label"],
            [(i, sentence(rng, "house"), "a family", ["entailment", "not_entailment"][i % 2]) for i in range(16)],
        )
    script = Path(sys.executable).parent / "electra-finetune"
    result = subprocess.run(
        [
            str(script),
            "-m",
            "task=sst2,rte",
            "seed=1,2",
            f"glue_dir={glue}",
            f"init_from={tiny_checkpoint}",
            "task.epochs=1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = subprocess.run(
        [
            str(Path(sys.executable).parent / "electra-glue-table"),
            str(tmp_path / "runs" / "finetune"),
            "--csv",
            str(tmp_path / "all.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0] == "| model | SST-2 | RTE | GLUE avg |"
    assert "4 runs, 2 model x task cells" in table.stdout
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 5


def test_without_files_the_hub_is_tried_and_offline_says_what_to_give(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(
        ConfigError, match=r"task sst2: nyu-mll/glue/sst2 split train could not be loaded .*give glue_dir=DIR"
    ):
        finetune(compose_finetune(tmp_path, f"init_from={tiny_checkpoint}"))
