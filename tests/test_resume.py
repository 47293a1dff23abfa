"""A run stopped and resumed sees exactly the batches an uninterrupted run sees."""

import pytest

from conftest import FAST, BatchRecorder
from electra_lit.train import train


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_run_feeds_the_same_batches(compose_pretrain, tmp_path, workers):
    common = [*FAST, f"data.num_workers={workers}", "trainer.val_check_interval=4",
              "+callbacks.recorder._target_=conftest.BatchRecorder"]

    BatchRecorder.seen.clear()
    train(compose_pretrain(*common, "trainer.max_steps=8", run_dir=tmp_path / "straight"))
    straight = list(BatchRecorder.seen)

    BatchRecorder.seen.clear()
    train(compose_pretrain(*common, "trainer.max_steps=5", run_dir=tmp_path / "resumed"))
    train(compose_pretrain(*common, "trainer.max_steps=8", run_dir=tmp_path / "resumed"))
    resumed = list(BatchRecorder.seen)

    assert [step for step, _ in straight] == list(range(8))
    assert resumed == straight
