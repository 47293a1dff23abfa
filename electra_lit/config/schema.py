"""The schemas of the entry points' configs, and the one check of a composed config.

conf/pretrain.yaml, finetune.yaml, prepare_data.yaml and train_tokenizer.yaml name their schema
(``pretrain_schema``, ...) first in their defaults list, so Hydra itself refuses an unknown key or
a value of the wrong type while it composes. A schema's typed parts are the components' own
dataclasses, kept next to their code with their checks in ``__post_init__`` (MaskingConfig in
data/pretraining/masking.py, ModelConfig in models/electra.py, DataConfig, OptimizerConfig, ...);
what relates two parts is checked here, on the schema that holds both. The open nodes
(``trainer``, ``logger``, ``callbacks``, ``tokenizer``, ``objective``, ``task``) take whatever the
class named by their ``_target_`` takes, and that class checks it.

:func:`validate_config` builds the dataclasses from a composed config, so every check runs, once.
Each field's trailing comment is its documentation: electra_lit.config.reference reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from electra_lit.data.pretraining.datamodule import MIN_SEQ_LENGTH, DataConfig
from electra_lit.data.pretraining.masking import MaskingConfig
from electra_lit.errors import ConfigError
from electra_lit.lit.callbacks.budget import BudgetConfig
from electra_lit.lit.compile import CompileConfig
from electra_lit.models.electra import ModelConfig
from electra_lit.optim import FinetuneOptimizerConfig, LRScheduleConfig, OptimizerConfig, check_total_steps
from electra_lit.storage import DEFAULT_CACHE_DIR

MATMUL_PRECISIONS = ("highest", "high", "medium")


@dataclass
class CommonConfig:
    """What every entry point shares (conf/common.yaml adds Hydra's run and sweep folders)."""

    seed: int = 1234  # seeds initialisation, data order, masks and sampling (every rank, every worker)
    print_config: bool = True  # print the resolved config as a tree when a run starts
    run_dir: str = "runs/${hydra:job.config_name}/${run_name:${hydra:job.override_dirname}}"  # everything of a run lives here; named after the overrides, so re-running a command resumes it
    cache_dir: str = DEFAULT_CACHE_DIR  # trained tokenizers are cached here, keyed by corpus contents and settings
    # where the run writes on this machine: run_dir itself, or for a URL run_dir (s3://, gs://) its mirror under
    # cache_dir/remote/, put to run_dir at each checkpoint (electra_lit.runs.remote); derived, leave it as it is
    local_run_dir: str = "${local_dir:${run_dir},${cache_dir}}"
    # fp32 matmuls: highest = full fp32; high = TF32 on Ampere+ GPUs (faster, ~1e-3 relative error)
    float32_matmul_precision: str = "high"
    # a run's lock (run_dir/run.lock) untouched this long is taken over by a new run (another host's dead run)
    run_lock_stale_minutes: float = 10.0

    def __post_init__(self) -> None:
        if self.float32_matmul_precision not in MATMUL_PRECISIONS:
            raise ConfigError(
                f"float32_matmul_precision={self.float32_matmul_precision} is not one of: "
                f"{', '.join(MATMUL_PRECISIONS)}"
            )


@dataclass
class PretrainConfig(CommonConfig):
    """``electra-pretrain``: an ELECTRA generator/discriminator pair and how to train it."""

    model: ModelConfig = MISSING  # the discriminator's sizes (model group) and the generator's
    objective: Any = None  # the training objective, built from its _target_ (objective group)
    masking: MaskingConfig = field(default_factory=MaskingConfig)  # which positions the generator predicts
    data: DataConfig = field(default_factory=DataConfig)  # the corpus and its batches (data group)
    tokenizer: Any = None  # the tokenizer, built from its _target_ (tokenizer group)
    # AdamW; weight decay skips LayerNorm weights and biases
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # lr(t) = lr * (1 - t / trainer.max_steps) * min(1, t / warmup_steps)
    lr_schedule: LRScheduleConfig = field(default_factory=LRScheduleConfig)
    trainer: Any = None  # lightning.pytorch.Trainer's arguments (trainer group)
    # a compute budget: pretraining stops at budget.flops training FLOPs (trainer.max_time: a wall-clock one)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    # torch.compile of the training step (compile group: none, inductor, cudagraphs)
    compile: CompileConfig = field(default_factory=CompileConfig)
    logger: Any = None  # loggers by name, each built from its _target_ (logger group)
    callbacks: Any = None  # Lightning callbacks by name, each built from its _target_ (callbacks group)
    # sequences per optimizer step over all devices and accumulation; null = data.batch_size x devices x accumulation
    global_batch_size: int | None = None
    # replaced by global_batch_size; a value is refused with the global_batch_size to use
    batch_tokens: int | None = None
    # start this run folder from another run's checkpoint (full state), while run_dir has none of its own
    ckpt_path: str | None = None
    init_from: Any = None  # start from Hugging Face ELECTRA weights: electra-export's folder, or {discriminator: DIR, generator: DIR}

    def __post_init__(self) -> None:
        super().__post_init__()
        length, positions = self.data.max_seq_length, self.model.discriminator.max_position_embeddings
        if self.batch_tokens is not None:
            raise ConfigError(
                f"batch_tokens={self.batch_tokens} was replaced by global_batch_size (sequences per "
                f"optimizer step): use global_batch_size={max(1, self.batch_tokens // length)}"
            )
        if length > positions:
            raise ConfigError(
                f"data.max_seq_length={length} must be in [{MIN_SEQ_LENGTH}, {positions}] (the model's "
                "max_position_embeddings); lower it or raise model.discriminator.max_position_embeddings"
            )
        self.masking.predictions(length)
        check_total_steps((self.trainer or {}).get("max_steps"))


@dataclass
class FinetuneConfig(CommonConfig):
    """``electra-finetune``: a pretrained encoder fine-tuned on one task."""

    task: Any = None  # the task: its files, columns, labels and metrics (task group)
    # an electra-pretrain .ckpt, or a transformers folder (electra-export's, or a released one)
    init_from: Any = MISSING
    # GLUE's download (CoLA/, SST-2/, ...): each task reads its folder, unless task.data_dir is set
    glue_dir: str | None = None
    tokenizer_vocab: str | None = None  # a vocab.txt to use instead of the encoder's own tokenizer (same vocab size)
    max_seq_length: int = 128  # tokens per example; longer pairs lose tokens from the longer segment
    batch_size: int = 32  # examples per batch
    num_workers: int = 0  # loader processes; 0 loads in the training process
    classifier_dropout: float = 0.1  # dropout in the classification head
    # AdamW with layer-wise LR decay
    optimizer: FinetuneOptimizerConfig = field(default_factory=FinetuneOptimizerConfig)
    trainer: Any = None  # lightning.pytorch.Trainer's arguments (trainer group, then finetune.yaml's)
    logger: Any = None  # loggers by name, each built from its _target_ (logger group)


@dataclass
class PrepareDataConfig(CommonConfig):
    """``electra-prepare-data``: a corpus tokenized and packed once into memory-mapped shards."""

    data: DataConfig = field(default_factory=DataConfig)  # the corpus, max_seq_length, packing and rates (data group)
    tokenizer: Any = None  # the tokenizer, built from its _target_ (tokenizer group)
    out_dir: str = MISSING  # where the shards and their tokenizer/ are written
    rows_per_shard: int = 65536  # sequences per shard file
    # processes that tokenize and pack; null = every core this process may use; 1 = this process only
    num_proc: int | None = None
    # machines the corpus is split across, each writing its own out_dir (read together by data.shards)
    num_shards: int = 1
    # this machine's part: the training documents d (corpus order, from 0) with d % num_shards == shard_index; 0 also holds the validation documents
    shard_index: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_proc is not None and self.num_proc < 1:
            raise ConfigError(
                f"num_proc={self.num_proc} must be a positive integer (processes), or null for every core"
            )
        if self.num_shards < 1:
            raise ConfigError(f"num_shards={self.num_shards} must be a positive integer (machines), 1 for one machine")
        if not 0 <= self.shard_index < self.num_shards:
            raise ConfigError(
                f"shard_index={self.shard_index} must be in [0, {self.num_shards - 1}] with num_shards="
                f"{self.num_shards}: machine i of num_shards takes shard_index=i"
            )


@dataclass
class TrainTokenizerConfig(CommonConfig):
    """``electra-tokenizer``: a WordPiece vocab trained on a corpus."""

    data: DataConfig = field(default_factory=DataConfig)  # the corpus (data group); only data.corpus is read
    out_dir: str = MISSING  # where tokenizer.json and vocab.txt are written
    vocab_size: int = 30522  # word pieces in the vocab, special tokens included
    lowercase: bool = True  # lowercase and strip accents before splitting into word pieces
    min_frequency: int = 2  # a word piece must occur this often to enter the vocab
    max_documents: int | None = None  # train on the first N documents only; null = all


# Each entry point's config name -> its schema, stored as "<name>_schema".
SCHEMAS: dict[str, type] = {
    "pretrain": PretrainConfig,
    "finetune": FinetuneConfig,
    "prepare_data": PrepareDataConfig,
    "train_tokenizer": TrainTokenizerConfig,
}


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore, where the conf files' defaults lists find them."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)


register_schemas()


# ---------------------------------------------------------------------------------- checking
def validate_config(cfg: DictConfig) -> Any:
    """Build the schema objects of a composed config, so that each part's checks and then the
    checks across parts run; returns the top-level object. Open nodes stay as they are."""
    if not is_dataclass(OmegaConf.get_type(cfg)):
        raise TypeError("validate_config needs a config composed from a conf file with a schema (pretrain_schema, ...)")
    return _build(cfg, "")


def _build(node: DictConfig, path: str) -> Any:
    schema = OmegaConf.get_type(node)
    names = [f.name for f in fields(schema) if f.init]
    unknown = sorted(set(node) - set(names))
    if unknown:
        raise ConfigError(
            f"{path or 'the config'}={unknown} has unknown keys; the keys are: {', '.join(sorted(names))}"
        )
    values = {name: _value(node, name, _key(path, name)) for name in names if name in node}
    try:
        return schema(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # a generic check (EncoderSizes, generator_config) names no path
        raise ConfigError(_named(path, str(err), names)) from None


def _value(node: DictConfig, name: str, key: str) -> Any:
    """A field's value for its dataclass: a typed part built (checked) first, an open node as it is."""
    child = node._get_node(name)
    if child._is_missing():
        raise ConfigError(f"{key} is required (??? in the config): give it, e.g. on the command line {key}=...")
    if isinstance(child, DictConfig) and is_dataclass(OmegaConf.get_type(child)):
        return _build(child, key)
    if isinstance(child, (DictConfig, ListConfig)) and child._metadata.ref_type is Any:
        return child
    if isinstance(child, (DictConfig, ListConfig)):
        return OmegaConf.to_container(child, resolve=True)
    return node[name]


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _named(path: str, message: str, names: list[str]) -> str:
    """A check's message with the config path it is about: ``model.generator_fraction=2 ...``
    when it starts with one of the node's keys, else ``model: ...``."""
    if not path:
        return message
    if any(message.startswith(f"{name}=") for name in names):
        return f"{path}.{message}"
    return f"{path}: {message}"
