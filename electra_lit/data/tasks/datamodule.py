"""LightningDataModule for fine-tuning: a task's examples as ``[CLS] A [SEP] B [SEP]`` batches.

Pairs longer than ``max_seq_length`` lose tokens from the end of the longer segment first, as
BERT and ELECTRA do. Batches are padded to their longest sequence. With ``task.both_orders`` the
training split holds every pair twice, (a, b) and (b, a); dev and test splits are read as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from electra_lit.data.tasks.glue import Example, Task, available_splits, read_split, with_both_orders
from electra_lit.data.tokenizer import SpecialTokenIds
from electra_lit.data.workers import worker_init


def truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer segment until both fit in ``budget``."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


class TaskDataModule(L.LightningDataModule):
    """Train, validation (one or more) and test splits of a :class:`Task`.

    Args:
        task: the task.
        tokenizer: the encoder's tokenizer.
        data_dir / files: where the examples are (see :func:`electra_lit.data.tasks.glue.read_split`);
            neither means the ``datasets`` hub.
        max_seq_length, batch_size, num_workers, seed: as their names say.
    """

    def __init__(
        self,
        task: Task,
        tokenizer: Tokenizer,
        data_dir: str | None = None,
        files: Mapping[str, str] | None = None,
        max_seq_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.task, self.tokenizer = task, tokenizer
        self.data_dir, self.files = data_dir, dict(files) if files else None
        self.special = SpecialTokenIds.from_tokenizer(tokenizer)
        self.max_seq_length, self.batch_size, self.num_workers, self.seed = (
            max_seq_length,
            batch_size,
            num_workers,
            seed,
        )
        self.train_set: list[dict] | None = None

    def _read(self, split: str, labelled: bool) -> list[Example]:
        return read_split(self.task, split, labelled, self.data_dir, self.files)

    def encode(self, examples: list[Example]) -> list[dict]:
        columns = list(zip(*(e.texts for e in examples)))
        encoded = [[e.ids for e in self.tokenizer.encode_batch(list(c), add_special_tokens=False)] for c in columns]
        cls, sep = self.special.cls, self.special.sep
        rows = []
        for n, example in enumerate(examples):
            if len(encoded) == 1:
                ids = [cls, *encoded[0][n][: self.max_seq_length - 2], sep]
                types = [0] * len(ids)
            else:
                a, b = truncate_pair(encoded[0][n], encoded[1][n], self.max_seq_length - 3)
                ids = [cls, *a, sep, *b, sep]
                types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
            rows.append({"input_ids": ids, "token_type_ids": types, "label": example.label, "index": example.index})
        return rows

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train = self._read(self.task.train, labelled=True)
        self.train_set = self.encode(with_both_orders(train) if self.task.both_orders else train)
        self.val_sets = [self.encode(self._read(s.name, labelled=True)) for s in self.task.validation]
        self.test_splits = available_splits(self.task.test, self.data_dir, self.files)
        self.test_sets = [self.encode(self._read(s.name, labelled=False)) for s in self.test_splits]

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(r["input_ids"]) for r in rows)

        def pad(name: str, value: int) -> torch.Tensor:
            return torch.tensor([r[name] + [value] * (length - len(r[name])) for r in rows])

        batch = {
            "input_ids": pad("input_ids", self.special.pad),
            "token_type_ids": pad("token_type_ids", 0),
            "attention_mask": torch.tensor(
                [[1] * len(r["input_ids"]) + [0] * (length - len(r["input_ids"])) for r in rows]
            ),
        }
        if rows[0]["label"] is not None:
            dtype = torch.float32 if self.task.labels is None else torch.long
            batch["labels"] = torch.tensor([r["label"] for r in rows], dtype=dtype)
        return batch

    def _loader(self, rows: list[dict], shuffle: bool) -> DataLoader:
        return DataLoader(
            rows,
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            worker_init_fn=worker_init(self.trainer.global_rank if self.trainer else 0),  # workers ignore SIGTERM
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader(rows, shuffle=False) for rows in self.val_sets]

    def test_dataloaders(self) -> list[DataLoader]:
        """One loader per test split present in the source, in ``test_splits`` order."""
        return [self._loader(rows, shuffle=False) for rows in self.test_sets]
