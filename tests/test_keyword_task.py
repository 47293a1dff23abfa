"""Fine-tuning learns: one adjective of twenty decides the label of a templated sentence.

600 training rows and default settings, from a tiny encoder pretrained as the quickstart
pretrains it (shorter here: 200 steps of 64 tokens, about a minute on 2 cores). A model that
learns anything learns this; at ELECTRA-Small's learning rate (3e-4) the tiny model did not in
the 57 steps of 3 epochs (0.68 to 0.85 dev accuracy from such checkpoints), which is why the
default for encoders narrower than Small is 2e-3 (docs/finetuning.md, "its learning rate").
"""

import csv
import random

import pytest
from hydra import compose, initialize_config_module

from conftest import pretrain_run

# The adjectives are single word pieces of the tiny model's vocab (trained on the novels).
POSITIVE = "agreeable amiable charming delightful excellent pleasant cheerful elegant happy lively".split()
NEGATIVE = "disagreeable dreadful wretched miserable shocking tiresome odious stupid horrid dull".split()
WHO = "my aunt, the colonel, her sister, the curate, his mother, our neighbour, the young lady, the captain".split(", ")
WHAT = "dinner ball weather letter house party walk visit journey evening garden music".split()
WHEN = "this morning, last week, at the assembly, in the spring, after tea, on sunday, before supper".split(", ")
TEMPLATES = (
    "{who} said the {what} was {adjective} {when}.",
    "the {what} {when} was {adjective}, or so {who} thought.",
    "{who} found the {what} quite {adjective}.",
    "{when}, {who} called the {what} {adjective} and went home.",
)


def keyword_rows(count: int, rng: random.Random) -> list[tuple[str, int]]:
    """(sentence, label) pairs: label 1 when the sentence's one adjective is from POSITIVE."""
    rows = []
    for _ in range(count):
        label = rng.randrange(2)
        adjective = rng.choice(POSITIVE if label else NEGATIVE)
        template = rng.choice(TEMPLATES)
        sentence = template.format(
            who=rng.choice(WHO), what=rng.choice(WHAT), when=rng.choice(WHEN), adjective=adjective
        )
        rows.append((sentence, label))
    return rows


def write_keyword_task(folder, train: int = 600, dev: int = 200, seed: int = 0) -> dict[str, str]:
    """train.csv and dev.csv (columns sentence, label), no dev sentence in train: task.files."""
    rng = random.Random(seed)
    splits = {"train": keyword_rows(train, rng)}
    seen = {sentence for sentence, _ in splits["train"]}
    splits["dev"] = [row for row in keyword_rows(3 * dev, rng) if row[0] not in seen][:dev]
    files = {}
    for split, rows in splits.items():
        files[split] = str(folder / f"{split}.csv")
        with open(files[split], "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("sentence", "label"), *rows])
    return files


def test_the_keyword_decides_the_label(tmp_path):
    files = write_keyword_task(tmp_path)
    with open(files["dev"], encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200 and {r["label"] for r in rows} == {"0", "1"}
    for row in rows:
        words = set(row["sentence"].replace(",", " ").replace(".", " ").split())
        (adjective,) = words & {*POSITIVE, *NEGATIVE}
        assert row["label"] == str(int(adjective in POSITIVE))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, cache_dir):
    """A tiny model pretrained like the quickstart, shorter: 200 steps of 64-token sequences."""
    root = tmp_path_factory.mktemp("keyword_pretrained")
    overrides = ["logger=none", "data.max_seq_length=64", "trainer.max_steps=200", "trainer.val_check_interval=200"]
    return pretrain_run(root, cache_dir, *overrides).last_checkpoint


@pytest.mark.slow
def test_fine_tuning_learns_a_keyword_task_with_default_settings(tmp_path, pretrained):
    from electra_lit.runs.finetune import finetune

    files = write_keyword_task(tmp_path)
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        cfg = compose(
            "finetune",
            overrides=[
                "task=sst2",  # one sentence, labels 0 and 1, 3 epochs
                "task.name=keyword",
                f"task.files={{train: {files['train']}, dev: {files['dev']}}}",
                f"init_from={pretrained}",
                f"run_dir={tmp_path / 'run'}",
                "logger=none",
            ],
        )
    results = finetune(cfg)
    assert results["metrics"]["accuracy"] >= 0.95, results["epochs"]
