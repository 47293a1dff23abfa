"""What every data-loader worker process does first: ignore the stop signals meant for the run,
and tokenize on one thread.

``scancel``, ``timeout`` and many schedulers signal the whole process group, loader workers
included. A worker killed by SIGTERM (or SIGUSR1, whose default action is to terminate) takes the
run down with a "DataLoader worker exited unexpectedly" error before the main process can save.
So workers ignore both, and the main process alone handles them (it checkpoints and exits 0:
:class:`~electra_lit.lit.callbacks.checkpoint.RunCheckpoint`); workers end with the main process.

The workers are the data path's parallelism: each one tokenizing with a thread per core too
(the tokenizers library's own pool, on whenever the main process has not used it before the fork)
would put workers x cores tokenizer threads beside the training step's own on the same cores.
PyTorch already gives each worker one intra-op thread.
"""

from __future__ import annotations

import os
import signal
from functools import partial

from lightning.fabric.utilities.seed import pl_worker_init_function

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def _init_worker(worker_id: int, rank: int) -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # read at each encode_batch: one thread per worker
    if int(os.environ.get("PL_SEED_WORKERS", 0)):  # what Lightning adds when a loader has no init function
        pl_worker_init_function(worker_id, rank=rank)


def worker_init(rank: int = 0) -> partial:
    """The ``worker_init_fn`` of a loader on global rank ``rank``: stop signals ignored, and the
    workers seeded as ``seed_everything(workers=True)`` asks."""
    return partial(_init_worker, rank=rank)
