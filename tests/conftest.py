"""Shared fixtures. Tests never touch the network: W&B offline, Hugging Face hubs offline."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import hashlib
import importlib.util
import sys
from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

import electra_lit  # noqa: F401  registers the config resolvers
from electra_lit.data.pretraining.corpus import builtin_corpus_dir

# A small, fast variant of the tiny model for tests that train: 8 sequences per batch and device,
# no gradient accumulation whatever the device count (global_batch_size=null).
FAST = [
    "model.discriminator.num_layers=2",
    "model.discriminator.hidden_size=64",
    "model.discriminator.intermediate_size=256",
    "model.discriminator.embedding_size=64",
    "global_batch_size=null",
    "data.max_seq_length=64",
    "data.batch_size=8",
    "data.num_workers=0",
]

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    """``scripts/<name>.py`` as a module: the scripts are files, not a package."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pretrain_run(root: Path, cache_dir: Path, *overrides: str):
    """Train ``electra-pretrain`` with ``run_dir=root`` and ``overrides`` in this process; its RunDir."""
    from electra_lit.runs.pretrain import train
    from electra_lit.runs.run_dir import RunDir

    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        cfg = compose("pretrain", overrides=[f"run_dir={root}", f"cache_dir={cache_dir}", *overrides])
    train(cfg)
    return RunDir(root)


# The built-in novels as a user's text files, tokenized on the fly (the streaming path).
STREAMED_AUSTEN = [
    "data=text",
    f"data.corpus.paths={builtin_corpus_dir()}",
    "data.corpus.document=chapter",
    "data.streaming=true",
    "data.val_documents=5",
    "tokenizer=bert_uncased",
]


@pytest.fixture(scope="session", autouse=True)
def wandb_files_in_tmp(tmp_path_factory):
    """W&B's files that belong to no run folder (a wandb.init without a folder) go to the session's
    temporary folder, never into the repository; run folders are every test's tmp_path."""
    previous = os.environ.get("WANDB_DIR")
    os.environ["WANDB_DIR"] = str(tmp_path_factory.mktemp("wandb"))
    yield
    if previous is None:
        os.environ.pop("WANDB_DIR", None)
    else:
        os.environ["WANDB_DIR"] = previous


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One tokenizer cache for the whole session: the Austen vocab is trained once."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def compose_pretrain(tmp_path, cache_dir):
    """Compose conf/pretrain.yaml with overrides, writing runs under tmp_path."""

    def _compose(*overrides: str, run_dir=None):
        with initialize_config_module("electra_lit.conf", version_base="1.3"):
            return compose(
                "pretrain",
                overrides=[f"run_dir={run_dir or tmp_path / 'run'}", f"cache_dir={cache_dir}", *overrides],
            )

    return _compose


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, cache_dir):
    """A tiny pretraining run's last.ckpt (2 steps): what fine-tuning and export tests start from.
    Shared by the session: copy it before changing it."""
    root = tmp_path_factory.mktemp("pretrained")
    return pretrain_run(root, cache_dir, *FAST, "trainer.max_steps=2", "trainer.val_check_interval=2").last_checkpoint


@pytest.fixture(scope="session")
def austen_tokenizer(tmp_path_factory, cache_dir):
    from electra_lit.data import TextCorpus, train_wordpiece

    return train_wordpiece(TextCorpus(), vocab_size=8192, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def bert_tokenizer():
    from electra_lit.data import load_wordpiece

    return load_wordpiece()


class BatchRecorder(L.Callback):
    """Records (global step, digest of the batch) for every training batch, across runs."""

    seen: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        digest = hashlib.sha1(b"".join(batch[k].numpy().tobytes() for k in sorted(batch))).hexdigest()
        BatchRecorder.seen.append((trainer.global_step, digest))


def build(cfg):
    """Tokenizer, datamodule and module from a composed config, as train() builds them."""
    from electra_lit.runs.pretrain import build_datamodule, build_module

    tokenizer = instantiate(cfg.tokenizer)
    return tokenizer, build_datamodule(cfg, tokenizer), build_module(cfg, tokenizer.get_vocab_size())


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server on 127.0.0.1 (tests/s3_server.py), one for the session."""
    from s3_server import s3_server as start

    with start() as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The session's S3 server in this test's environment (as s3fs reads it), and a new empty bucket."""
    import fsspec

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    fsspec.get_filesystem_class("s3").clear_instance_cache()  # filesystems made with other variables
    s3_server.bucket = s3_server.new_bucket()
    yield s3_server
    fsspec.get_filesystem_class("s3").clear_instance_cache()
