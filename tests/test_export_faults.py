"""Foreseeable faults are one line, never a traceback: electra-export's checkpoint and out_dir, a
run_dir that is a file, and sentences cut because no sequence holds them (a warning)."""

import json
import random

import pytest
from hydra import compose, initialize_config_module

from electra_lit.cli.export import main as export_main
from electra_lit.data.pretraining.packing import SequenceBuilder, Truncated, pack_documents, truncation_warning
from electra_lit.errors import ConfigError
from electra_lit.runs.run_dir import RunDir


def export(capsys, *argv):
    """Run ``electra-export ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        export_main([str(a) for a in argv])
        code = 0
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code, err, *parts):
    assert code == 2, err
    assert err.startswith("electra-export: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, tiny_checkpoint):
    """One epoch of fine-tuning it on a tiny SST-2: its best.ckpt."""
    from electra_lit.runs.finetune import finetune

    root = tmp_path_factory.mktemp("finetuned")
    rng = random.Random(0)
    for split, n in (("train", 32), ("dev", 16)):
        rows = [
            f"{'the house was excellent' if (y := rng.randrange(2)) else 'the house was dreadful'}\t{y}"
            for _ in range(n)
        ]
        (root / "sst2").mkdir(exist_ok=True)
        (root / "sst2" / f"{split}.tsv").write_text("\n".join(["sentence\tlabel", *rows]) + "\n")
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        cfg = compose(
            "finetune",
            overrides=[
                f"run_dir={root / 'run'}",
                "batch_size=16",
                "task=sst2",
                f"task.data_dir={root / 'sst2'}",
                f"init_from={tiny_checkpoint}",
                "task.epochs=1",
            ],
        )
    finetune(cfg)
    return RunDir(root / "run").best_checkpoint


# ------------------------------------------------------------------ electra-export: the checkpoint
@pytest.mark.slow
def test_export_refuses_a_fine_tuning_checkpoint(capsys, tmp_path, fine_tuned, tiny_checkpoint):
    code, _, err = export(capsys, fine_tuned, tmp_path / "hf")
    assert_one_line(
        code,
        err,
        f"checkpoint {fine_tuned} is a fine-tuning checkpoint (electra-finetune's",
        "electra-export takes a pretraining checkpoint, electra-pretrain's RUN_DIR/checkpoints/last.ckpt",
        f"fine-tuned from init_from={tiny_checkpoint}",
    )
    assert not (tmp_path / "hf").exists()


@pytest.mark.slow
def test_export_refuses_a_truncated_or_foreign_checkpoint(capsys, tmp_path, tiny_checkpoint):
    truncated = tmp_path / "checkpoints" / "last.ckpt"
    truncated.parent.mkdir()
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:1000])
    code, _, err = export(capsys, truncated, tmp_path / "hf")
    assert_one_line(
        code,
        err,
        f"checkpoint {truncated} cannot be read (",
        "it is truncated or corrupt, or not a checkpoint; give an intact .ckpt written by electra-pretrain",
    )
    # the checkpoint it replaced is next to it: export that one instead
    (truncated.parent / "last.previous.ckpt").write_bytes(tiny_checkpoint.read_bytes())
    code, _, err = export(capsys, truncated, tmp_path / "hf")
    assert_one_line(code, err, f"export {truncated.parent / 'last.previous.ckpt'} (the checkpoint it replaced)")
    for name, content in [("empty.ckpt", b""), ("text.ckpt", b"not a checkpoint\n")]:
        (tmp_path / name).write_bytes(content)
        code, _, err = export(capsys, tmp_path / name, tmp_path / "hf")
        assert_one_line(code, err, f"checkpoint {tmp_path / name} cannot be read (")
    assert not (tmp_path / "hf").exists()


@pytest.mark.slow
def test_export_refuses_a_checkpoint_whose_weights_do_not_fit_its_model(capsys, tmp_path, tiny_checkpoint):
    import torch

    contents = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    contents["hyper_parameters"]["model"]["discriminator"]["num_layers"] += 1  # e.g. another version's config
    torch.save(contents, tmp_path / "edited.ckpt")
    code, _, err = export(capsys, tmp_path / "edited.ckpt", tmp_path / "hf")
    assert_one_line(
        code,
        err,
        f"checkpoint {tmp_path / 'edited.ckpt'}: its weights do not fit the model its hyper_parameters describe (",
        "was it written by another version of electra_lit?",
    )


def test_export_refuses_a_missing_checkpoint_and_a_folder(capsys, tmp_path):
    code, _, err = export(capsys, tmp_path / "none.ckpt", tmp_path / "hf")
    assert_one_line(code, err, f"checkpoint {tmp_path / 'none.ckpt'}: no such file")
    run = RunDir(tmp_path / "run")
    code, _, err = export(capsys, run.root.mkdir() or run.root, tmp_path / "hf")
    assert_one_line(code, err, "is a folder, not a checkpoint file; give a .ckpt file written by electra-pretrain")
    run.checkpoints.mkdir()
    run.last_checkpoint.write_bytes(b"")
    code, _, err = export(capsys, run.root, tmp_path / "hf")
    assert_one_line(code, err, f"give the .ckpt file, e.g. {run.last_checkpoint}")
    assert not (tmp_path / "hf").exists()


# ------------------------------------------------------------------ electra-export: the out_dir
def test_export_refuses_an_out_dir_that_is_a_file(capsys, tmp_path):
    # out_dir is checked first: no checkpoint is read
    (tmp_path / "out").write_text("x")
    code, _, err = export(capsys, tmp_path / "none.ckpt", tmp_path / "out")
    assert_one_line(code, err, f"out_dir {tmp_path / 'out'} is a file, not a folder; give a new or empty folder")
    code, _, err = export(capsys, tmp_path / "none.ckpt", tmp_path / "out" / "hf")
    assert_one_line(code, err, f"out_dir {tmp_path / 'out' / 'hf'}: {tmp_path / 'out'} is a file, not a folder")
    assert (tmp_path / "out").read_text() == "x"


def test_export_refuses_a_non_empty_out_dir_without_overwrite(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    code, _, err = export(capsys, tmp_path / "none.ckpt", tmp_path / "out")
    assert_one_line(
        code,
        err,
        f"out_dir {tmp_path / 'out'} is not empty; give a new or empty folder, or --overwrite to replace its "
        "discriminator/, masked_lm/, generator/",
    )
    with pytest.raises(ConfigError, match="is not empty"):  # the library function says the same
        from electra_lit.hf import export_checkpoint

        export_checkpoint(tmp_path / "none.ckpt", tmp_path / "out")


@pytest.mark.slow
def test_export_overwrite_replaces_what_export_writes_and_keeps_the_rest(capsys, tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    (out / "discriminator").mkdir(parents=True)
    (out / "discriminator" / "stale.bin").write_text("old")
    (out / "masked_lm").write_text("an old file where export writes a folder")
    (out / "notes.txt").write_text("mine")

    # a bad checkpoint with --overwrite: nothing is removed
    (tmp_path / "bad.ckpt").write_bytes(tiny_checkpoint.read_bytes()[:1000])
    code, _, err = export(capsys, tmp_path / "bad.ckpt", out, "--overwrite")
    assert_one_line(code, err, "cannot be read")
    assert (out / "discriminator" / "stale.bin").exists()

    code, stdout, err = export(capsys, tiny_checkpoint, out, "--overwrite")
    assert code == 0, err
    assert stdout.splitlines() == [f"wrote {out / 'discriminator'}", f"wrote {out / 'generator'}"]
    assert not (out / "discriminator" / "stale.bin").exists() and not (out / "masked_lm").exists()
    assert json.loads((out / "discriminator" / "config.json").read_text())["architectures"] == ["ElectraForPreTraining"]
    assert (out / "generator" / "tokenizer.json").is_file()
    assert (out / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------ run_dir
def test_a_run_dir_that_is_a_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(ConfigError) as error:
        RunDir(tmp_path / "run").check_usable()
    assert str(error.value) == (
        f"run_dir={tmp_path / 'run'} is a file, not a folder; give run_dir=another path (a new folder, or a "
        "run's folder to resume it), or move the file away"
    )
    with pytest.raises(ConfigError, match=f"run_dir={tmp_path / 'run' / 'a' / 'b'}: {tmp_path / 'run'} is a file"):
        RunDir(tmp_path / "run" / "a" / "b").check_usable()
    RunDir(tmp_path / "new" / "run").check_usable()  # not there yet: the run makes it
    RunDir(tmp_path).check_usable()  # an existing folder


# ------------------------------------------------------------------ packing: sentences no sequence holds
def builder(mode="document", max_seq_length=128):
    """No random draws: one segment split (prefix: no coin flips), no single segments, full targets."""
    return SequenceBuilder(
        max_seq_length,
        cls_id=1,
        sep_id=2,
        mode=mode,
        single_segment_prob=0.0,
        short_seq_prob=0.0,
        segment_split="prefix",
    )


@pytest.mark.parametrize("mode", ["document", "packed"])
def test_packing_counts_the_tokens_a_too_long_sentence_loses(mode):
    line = list(range(10, 5010))  # a 5,000-token "sentence": a line without sentence ends
    short = [7] * 10
    b = builder(mode)
    rows = b.add([line]) + b.add([short, line, [8] * 20]) + b.add([[9] * 100, [9] * 100]) + b.finish()
    assert all(len(ids) <= 128 for ids, _ in rows)
    # alone: segment A keeps 126 tokens; after a 10-token segment A, segment B keeps 128 - 3 - 10
    assert (b.truncated_sentences, b.dropped_tokens) == (2, (5000 - 126) + (5000 - (128 - 3 - 10)))
    assert b.truncated.input_tokens == 5000 + 10 + 5000 + 20 + 200
    warning = truncation_warning(b)
    assert warning == (
        "2 sentences longer than a sequence (data.max_seq_length=128) were cut to fit: 9,759 tokens dropped "
        "(95.4% of all); the corpus has text without sentence ends (. ! ? before a capital letter): split it "
        "into sentences or blank-line separated paragraphs, or raise data.max_seq_length"
    )

    # the counts survive a saved and restored state, and add up across builders (prepare's chunks)
    restored = builder(mode)
    restored.load_state_dict(json.loads(json.dumps(b.state_dict())))
    assert restored.truncated == b.truncated
    total = Truncated(128) + b.truncated + restored.truncated
    assert truncation_warning(total).startswith("4 sentences longer than a sequence")


def test_packing_without_too_long_sentences_warns_of_nothing():
    # ELECTRA's own cut (the last sentence of a full sequence) is not a sentence no sequence holds
    documents = [[[5] * 100, [6] * 100, [7] * 100] for _ in range(5)]
    packed = pack_documents(documents, 128, cls_id=1, sep_id=2, pad_id=0, short_seq_prob=0.0)
    assert packed.truncated == Truncated(128, 0, 0, 1500)
    assert truncation_warning(packed) is None
    one = pack_documents([[[5] * 3, list(range(1000))]], 64, cls_id=1, sep_id=2, pad_id=0)
    assert one.truncated.sentences == 1 and truncation_warning(one).startswith(
        "1 sentence longer than a sequence (data.max_seq_length=64) was cut to fit: "
    )


def test_the_command_line_refuses_a_run_dir_that_is_a_file(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for run_dir in (blocker, blocker / "sub"):
        done = subprocess.run(
            [sys.executable, "-m", "electra_lit.cli.pretrain", f"run_dir={run_dir}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0 and "is a file, not a folder" in done.stderr
