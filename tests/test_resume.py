"""A run stopped and resumed sees exactly the batches an uninterrupted run sees: built-in corpus
(in memory), a local text source streamed, and pre-tokenized shards; 0 and 2 loader workers."""

import pytest
from hydra import compose, initialize_config_module

from conftest import FAST, STREAMED_AUSTEN, BatchRecorder
from electra_lit.data.pretraining.prepare import prepare
from electra_lit.runs.pretrain import train


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "austen-64"
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        cfg = compose(
            "prepare_data",
            overrides=[
                f"out_dir={out}",
                "data.max_seq_length=64",
                "data.val_documents=5",
                "rows_per_shard=2000",
                "run_dir=unused",
            ],
        )
    prepare(cfg)
    return out


SOURCES = {
    "builtin": [],
    "text-streaming": STREAMED_AUSTEN,
    "shards": ["data=shards", "tokenizer=pretrained"],
}


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("source", list(SOURCES))
def test_resumed_run_feeds_the_same_batches(compose_pretrain, tmp_path, source, workers, request):
    overrides = list(SOURCES[source])
    if source == "shards":
        directory = request.getfixturevalue("shards")
        overrides += [f"data.shards={directory}", f"tokenizer.path={directory / 'tokenizer'}"]
    common = [
        *FAST,
        *overrides,
        f"data.num_workers={workers}",
        "trainer.val_check_interval=4",
        "trainer.limit_val_batches=2",
        "+callbacks.recorder._target_=conftest.BatchRecorder",
    ]

    BatchRecorder.seen.clear()
    train(compose_pretrain(*common, "trainer.max_steps=8", run_dir=tmp_path / "straight"))
    straight = list(BatchRecorder.seen)

    BatchRecorder.seen.clear()
    train(compose_pretrain(*common, "trainer.max_steps=5", run_dir=tmp_path / "resumed"))
    train(compose_pretrain(*common, "trainer.max_steps=8", run_dir=tmp_path / "resumed"))
    resumed = list(BatchRecorder.seen)

    assert [step for step, _ in straight] == list(range(8))
    assert resumed == straight
