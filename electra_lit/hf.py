"""Hugging Face transformers interop: our models <-> ``ElectraForPreTraining`` / ``ElectraForMaskedLM``.

Export writes directories that ``from_pretrained`` loads unchanged (``config.json``, weights and
tokenizer files); import reads such directories, released ELECTRA checkpoints included, into our
models. One table of (our parameter, HF key) pairs drives both directions; our fused
query/key/value matrix maps to HF's three. Needs the ``hf`` extra (``pip install 'electra_lit[hf]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn

from electra_lit import storage
from electra_lit.data.tokenizer import load_tokenizer, save_tokenizer
from electra_lit.errors import ConfigError
from electra_lit.models import Discriminator, Encoder, EncoderConfig, GDESWordEmbedding, MaskedLM
from electra_lit.storage import DEFAULT_CACHE_DIR

log = logging.getLogger(__name__)

_EMBEDDINGS = {
    "word.weight": "word_embeddings.weight",
    "position.weight": "position_embeddings.weight",
    "token_type.weight": "token_type_embeddings.weight",
    "norm.weight": "LayerNorm.weight",
    "norm.bias": "LayerNorm.bias",
}
_LAYER = {
    "attention_out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_HEADS = {
    Discriminator: {
        "head_dense": "discriminator_predictions.dense",
        "head_out": "discriminator_predictions.dense_prediction",
    },
    MaskedLM: {"head_dense": "generator_predictions.dense", "head_norm": "generator_predictions.LayerNorm"},
}
# EncoderConfig field -> ElectraConfig field
_CONFIG = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "embedding_size": "embedding_size",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "dropout": "hidden_dropout_prob",
    "layer_norm_eps": "layer_norm_eps",
    "initializer_range": "initializer_range",
}


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ConfigError("Hugging Face interop needs transformers: pip install 'electra_lit[hf]'") from None
    return transformers


def hf_class(model: nn.Module):
    """The transformers class of one of our models: a discriminator or a masked LM."""
    t = _transformers()
    return t.ElectraForPreTraining if isinstance(model, Discriminator) else t.ElectraForMaskedLM


def to_hf_config(config: EncoderConfig, architecture: str):
    values = {theirs: getattr(config, ours) for ours, theirs in _CONFIG.items()}
    values["embedding_size"] = config.embedding_dim
    return _transformers().ElectraConfig(
        **values, attention_probs_dropout_prob=config.dropout, hidden_act="gelu", architectures=[architecture]
    )


def from_hf_config(hf_config) -> EncoderConfig:
    if hf_config.hidden_act != "gelu":
        raise ConfigError(f"hidden_act={hf_config.hidden_act!r} in the checkpoint; electra_lit implements gelu only")
    return EncoderConfig(**{ours: getattr(hf_config, theirs) for ours, theirs in _CONFIG.items()})


def _encoder_pairs(encoder: Encoder, ours: str = "encoder.", theirs: str = "electra.") -> list[tuple[str, list[str]]]:
    """(our attribute path, its HF key or keys) of an encoder; the fused qkv maps to three HF keys."""
    pairs = [(f"{ours}embeddings.{o}", [f"{theirs}embeddings.{t}"]) for o, t in _EMBEDDINGS.items()]
    if encoder.embeddings_project is not None:
        pairs += [(f"{ours}embeddings_project.{p}", [f"{theirs}embeddings_project.{p}"]) for p in ("weight", "bias")]
    for i in range(len(encoder.layers)):
        layer_ours, layer_theirs = f"{ours}layers.{i}.", f"{theirs}encoder.layer.{i}."
        for p in ("weight", "bias"):
            pairs.append(
                (f"{layer_ours}qkv.{p}", [f"{layer_theirs}attention.self.{n}.{p}" for n in ("query", "key", "value")])
            )
            pairs += [(f"{layer_ours}{o}.{p}", [f"{layer_theirs}{t}.{p}"]) for o, t in _LAYER.items()]
    return pairs


def _pairs(model: Discriminator | MaskedLM) -> list[tuple[str, list[str]]]:
    """(our attribute path, its HF key or keys) of a whole model, heads included."""
    pairs = _encoder_pairs(model.encoder)
    pairs += [(f"{o}.{p}", [f"{t}.{p}"]) for o, t in _HEADS[type(model)].items() for p in ("weight", "bias")]
    if isinstance(model, MaskedLM):
        pairs.append(("output_bias", ["generator_lm_head.bias"]))
    return pairs


def _resolve(model: nn.Module, path: str):
    *parents, name = path.split(".")
    owner = model
    for part in parents:
        owner = getattr(owner, part)
    return owner, name


def hf_state_dict(model: Discriminator | MaskedLM) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names (GDES word embeddings merged into one table)."""
    state = {}
    for ours, keys in _pairs(model):
        owner, name = _resolve(model, ours)
        tensor = getattr(owner, name).detach()
        state.update(zip(keys, tensor.chunk(len(keys)) if len(keys) > 1 else [tensor]))
    if isinstance(model, MaskedLM):
        state["generator_lm_head.weight"] = state["electra.embeddings.word_embeddings.weight"]  # tied
    return {key: tensor.clone().contiguous() for key, tensor in state.items()}


def load_hf_state_dict(model: Discriminator | MaskedLM, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy transformers-named weights into ``model``; shapes must match exactly."""
    _load_pairs(model, _pairs(model), state, source, f"an ELECTRA {hf_class(model).__name__}")


def load_hf_encoder(directory: str | Path) -> Encoder:
    """The encoder of any ELECTRA transformers directory (discriminator, generator or base model)."""
    hf_model = _transformers().ElectraModel.from_pretrained(directory)
    encoder = Encoder(from_hf_config(hf_model.config))
    _load_pairs(
        encoder, _encoder_pairs(encoder, ours="", theirs=""), hf_model.state_dict(), str(directory), "an ELECTRA model"
    )
    return encoder


def _load_pairs(model: nn.Module, pairs, state: Mapping[str, torch.Tensor], source: str, expected: str) -> None:
    used = {"generator_lm_head.weight"}  # tied to the word embeddings
    with torch.no_grad():
        for ours, keys in pairs:
            missing = [key for key in keys if key not in state]
            if missing:
                raise ConfigError(f"{source}: the checkpoint has no {missing[0]}; is it {expected}?")
            value = torch.cat([state[key] for key in keys]) if len(keys) > 1 else state[keys[0]]
            used.update(keys)
            owner, name = _resolve(model, ours)
            if isinstance(owner, GDESWordEmbedding):  # keep stop_grad(generator) + delta = value
                owner.delta.copy_(value - owner.source.weight)
                continue
            target = getattr(owner, name)
            if target.shape != value.shape:
                raise ConfigError(
                    f"{source}: {keys[0]} has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}"
                )
            target.copy_(value)
    unused = sorted(key for key in state if key not in used and not key.endswith(("position_ids", "token_type_ids")))
    if unused:
        raise ConfigError(f"{source}: weights the model has no place for, e.g. {unused[0]} ({len(unused)} in all)")


def save_pretrained(model: Discriminator | MaskedLM, tokenizer: Tokenizer | None, directory: str | Path) -> Path:
    """Write ``model`` as a transformers directory (config, safetensors weights, tokenizer files)."""
    directory = Path(directory)
    cls = hf_class(model)
    hf_model = cls(to_hf_config(model.encoder.config, cls.__name__))
    hf_model.load_state_dict(hf_state_dict(model), strict=True)
    hf_model.save_pretrained(directory)
    if tokenizer is not None:
        save_tokenizer(tokenizer, directory)
        lowercase = bool(getattr(tokenizer.normalizer, "lowercase", False))
        _transformers().ElectraTokenizerFast(tokenizer_object=tokenizer, do_lower_case=lowercase).save_pretrained(
            directory
        )
    return directory


def main_model_folder(main_model: nn.Module) -> str:
    """The export folder of a pretraining run's kept model, named for what it is: ``discriminator``
    (ELECTRA's, ``ElectraForPreTraining``) or ``masked_lm`` (the MLM objectives', ``ElectraForMaskedLM``)."""
    return "discriminator" if isinstance(main_model, Discriminator) else "masked_lm"


def export_pretrained(
    generator: MaskedLM | None, main_model: nn.Module, tokenizer: Tokenizer | None, out_dir: str | Path
) -> list[Path]:
    """``out_dir/discriminator`` or ``out_dir/masked_lm`` (the kept model, :func:`main_model_folder`)
    and ``out_dir/generator`` when there is one."""
    out_dir = Path(out_dir)
    written = [save_pretrained(main_model, tokenizer, out_dir / main_model_folder(main_model))]
    if generator is not None:
        written.append(save_pretrained(generator, tokenizer, out_dir / "generator"))
    return written


def _compare_configs(ours: EncoderConfig, theirs: EncoderConfig, source: str, role: str) -> None:
    sizes = [f.name for f in fields(EncoderConfig) if f.name not in ("dropout", "initializer_range", "layer_norm_eps")]
    different = [
        n
        for n in sizes
        if getattr(ours, n) != getattr(theirs, n)
        and not (n == "embedding_size" and ours.embedding_dim == theirs.embedding_dim)
    ]
    if not different:
        return
    if role == "generator" and set(different) <= {"hidden_size", "num_heads", "intermediate_size", "num_layers"}:
        fix = (
            "set model.generator={"
            + ", ".join(
                f"{n}: {getattr(theirs, n)}" for n in ("hidden_size", "num_heads", "intermediate_size", "num_layers")
            )
            + "}"
        )
    else:
        fix = "choose the matching model=... and tokenizer, or set the sizes under model.discriminator"
    details = "; ".join(f"{n}: checkpoint {getattr(theirs, n)}, config {getattr(ours, n)}" for n in different)
    raise ConfigError(f"init_from: {source} does not fit the configured {role} ({details}); {fix}")


def check_same_vocabulary(folder: Path, tokenizer: Tokenizer, key: str) -> None:
    """Refuse weights trained with another vocabulary than the run's tokenizer: the same id would
    mean another token, and every embedding would be silently scrambled. A folder without a
    tokenizer (``tokenizer.json`` or ``vocab.txt``) cannot be checked: a warning says so."""
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        log.warning("%s=%s has no tokenizer.json or vocab.txt: its vocabulary cannot be checked", key, folder)
        return
    theirs, ours = load_tokenizer(str(folder)).get_vocab(), tokenizer.get_vocab()
    if theirs == ours:
        return
    by_id = {index: token for token, index in theirs.items()}
    moved = sum(by_id.get(index) != token for token, index in ours.items())
    raise ConfigError(
        f"{key}={folder} was trained with another vocabulary ({len(theirs)} tokens; this run's tokenizer has "
        f"{len(ours)}, {moved} of its ids mean other tokens there): train with its tokenizer, "
        f"tokenizer=pretrained tokenizer.path={folder}"
    )


def load_pretrained(
    generator: MaskedLM | None,
    main_model: nn.Module,
    init_from: str | Mapping[str, str],
    tokenizer: Tokenizer | None = None,
) -> None:
    """Initialise from transformers directories: ``init_from`` is a folder holding
    ``discriminator/`` (``masked_lm/`` for the MLM objectives; see :func:`main_model_folder`) and
    ``generator/``, as ``electra-export`` writes, or a mapping ``{discriminator: DIR, generator: DIR}``
    (e.g. the released google/electra-*-discriminator and -generator, downloaded). The generator is
    loaded first, so shared weights end as the main model's. With ``tokenizer`` (the run's), each
    folder's own tokenizer must have the same vocabulary (:func:`check_same_vocabulary`)."""
    main = main_model_folder(main_model)
    if isinstance(init_from, str):
        root = Path(init_from).expanduser()
        paths = {name: root / name for name in ("generator", main) if (root / name).is_dir()}
        if main not in paths:
            raise ConfigError(
                f"init_from={init_from}: no {main}/ folder in it; give a folder written by electra-export, or init_from={{{main}: DIR, generator: DIR}}"
            )
    else:
        paths = {name: Path(path).expanduser() for name, path in init_from.items() if path}
    for name in ("generator", main):
        if name not in paths:
            continue
        model = generator if name == "generator" else main_model
        if model is None:
            log.info("init_from: this objective has no generator; %s is not used", paths[name])
            continue
        if not (paths[name] / "config.json").is_file():
            raise ConfigError(
                f"init_from.{name}={paths[name]}: no config.json there; it is not a transformers directory"
            )
        if tokenizer is not None:
            check_same_vocabulary(paths[name], tokenizer, f"init_from.{name}")
        hf_model = hf_class(model).from_pretrained(paths[name])
        _compare_configs(model.encoder.config, from_hf_config(hf_model.config), str(paths[name]), name)
        load_hf_state_dict(model, hf_model.state_dict(), str(paths[name]))
        log.info("init_from: %s initialised from %s", name, paths[name])


# every folder electra-export may write into its out_dir: what --overwrite replaces
EXPORT_FOLDERS = ("discriminator", "masked_lm", "generator")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an out_dir that is a file, lies under a file, or (without ``overwrite``) holds files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out_dir {out_dir} is a file, not a folder; give a new or empty folder")
    blocking = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(
            f"out_dir {out_dir}: {blocking} is a file, not a folder; give a path whose parents are folders"
        )
    if out_dir.is_dir() and not overwrite and any(out_dir.iterdir()):
        raise ConfigError(
            f"out_dir {out_dir} is not empty; give a new or empty folder, or --overwrite to replace its "
            f"{'/, '.join(EXPORT_FOLDERS)}/"
        )


def _fine_tuned_from(checkpoint: Path) -> str:
    """``init_from`` of the fine-tuning run whose checkpoint this is (its run folder's config.yaml), or ''."""
    from electra_lit.runs.run_dir import RunDir

    config = RunDir(checkpoint.parent.parent).config  # run_dir/checkpoints/best.ckpt -> run_dir's config
    try:
        from omegaconf import OmegaConf

        init_from = OmegaConf.load(config).get("init_from")
    except Exception:  # no such file, not YAML: the hint is only a hint
        return ""
    return f" (this one was fine-tuned from init_from={init_from})" if isinstance(init_from, str) else ""


def _read_pretraining_checkpoint(checkpoint: str | Path) -> Path:
    """The path of a readable electra-pretrain checkpoint; anything else is refused in one line."""
    from electra_lit.runs.resume import UnreadableCheckpoint, read_checkpoint
    from electra_lit.runs.run_dir import RunDir, previous_checkpoint

    path = Path(checkpoint).expanduser()
    if path.is_dir():
        inside = [p for p in (RunDir(path).last_checkpoint, path / f"{RunDir.LAST}.ckpt") if p.is_file()]
        fix = f"give the .ckpt file, e.g. {inside[0]}" if inside else "give a .ckpt file written by electra-pretrain"
        raise ConfigError(f"checkpoint {checkpoint} is a folder, not a checkpoint file; {fix}")
    if not path.is_file():
        raise ConfigError(f"checkpoint {checkpoint}: no such file")
    try:
        contents = read_checkpoint(path)
    except UnreadableCheckpoint as err:
        previous = previous_checkpoint(path)
        fix = (
            f"export {previous} (the checkpoint it replaced) instead"
            if previous.is_file() and previous != path
            else "give an intact .ckpt written by electra-pretrain"
        )
        reason = str(err).split(". ")[0].split(", please")[0]  # torch goes on about miniz and mmap
        raise ConfigError(
            f"checkpoint {checkpoint} cannot be read ({reason}): it is truncated or corrupt, or not a checkpoint; {fix}"
        ) from None
    hparams = contents.get("hyper_parameters") or {}
    accepts = f"electra-export takes a pretraining checkpoint, electra-pretrain's {RunDir('RUN_DIR').last_checkpoint}"
    if "num_labels" in hparams:
        raise ConfigError(
            f"checkpoint {checkpoint} is a fine-tuning checkpoint (electra-finetune's, a classifier of "
            f"{hparams['num_labels']} label(s)); {accepts}{_fine_tuned_from(path)}"
        )
    if not {"model", "vocab_size", "objective"} <= set(hparams):
        raise ConfigError(
            f"checkpoint {checkpoint} is not an electra-pretrain checkpoint (its hyper_parameters have no "
            f"model, vocab_size and objective); {accepts}"
        )
    return path


def _remove_export(out_dir: Path) -> None:
    """--overwrite: remove what an earlier export wrote into ``out_dir``, and nothing else."""
    import shutil

    for name in EXPORT_FOLDERS:
        target = out_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False, cache_dir: str = DEFAULT_CACHE_DIR
) -> list[Path] | list[str]:
    """What ``electra-export`` does: a pretraining checkpoint's models, with its tokenizer, as
    transformers directories (:func:`export_pretrained`).

    ``out_dir`` must be new or empty; with ``overwrite`` its :data:`EXPORT_FOLDERS` are replaced
    (once the checkpoint has been read) and anything else in it is left alone. A missing, unreadable
    or fine-tuning checkpoint, or an out_dir that cannot be written, is a one-line ConfigError.
    Either may be a URL (electra_lit.storage): the checkpoint is fetched into ``cache_dir``, and a
    remote ``out_dir`` gets the folders written locally first, each file put whole."""
    if storage.is_remote(out_dir):
        return _export_to_remote(checkpoint, str(out_dir), overwrite, cache_dir)
    out_dir = Path(out_dir).expanduser()
    _check_out_dir(out_dir, overwrite)
    if storage.is_remote(checkpoint):
        checkpoint = storage.fetch(str(checkpoint), cache_dir, "checkpoint")
    path = _read_pretraining_checkpoint(checkpoint)
    from electra_lit.lit.modules.pretrain import ElectraPretrainModule

    try:
        module = ElectraPretrainModule.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except RuntimeError as err:
        if "Error(s) in loading state_dict" not in str(err):
            raise
        detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), "")[:200]
        raise ConfigError(
            f"checkpoint {checkpoint}: its weights do not fit the model its hyper_parameters describe "
            f"({detail}); was it written by another version of electra_lit?"
        ) from None
    tokenizer = Tokenizer.from_str(module.tokenizer_json) if module.tokenizer_json else None
    if tokenizer is None:
        log.warning("checkpoint %s holds no tokenizer: the exported folders have none", checkpoint)
    if overwrite:
        _remove_export(out_dir)
    return export_pretrained(module.generator, module.main_model, tokenizer, out_dir)


def _export_to_remote(checkpoint: str | Path, url: str, overwrite: bool, cache_dir: str) -> list[str]:
    """:func:`export_checkpoint` into a remote ``url``: written to a local folder, then put."""
    import tempfile

    storage.check_url(url, "out_dir", must_exist=False)
    present = {name.split("/", 1)[0] for name in storage.list_files(url)}
    if present and not overwrite:
        raise ConfigError(
            f"out_dir {url} is not empty; give a new or empty folder, or --overwrite to replace its "
            f"{'/, '.join(EXPORT_FOLDERS)}/"
        )
    with tempfile.TemporaryDirectory(prefix="electra-export-") as local:
        written = export_checkpoint(checkpoint, local, cache_dir=cache_dir)
        fs, path = storage.filesystem(url, "out_dir")
        for name in present & set(EXPORT_FOLDERS):  # --overwrite: what an earlier export wrote there
            fs.rm(storage.join(path, name), recursive=True)
        storage.upload_tree(local, url)
        return [storage.join(url, Path(folder).name) for folder in written]
