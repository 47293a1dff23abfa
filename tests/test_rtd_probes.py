"""scripts/rtd_probes.py: the state, alone and bigram probes of a tiny pretraining run, read from
what they print, and the one-line errors of a folder without a run and of an unknown key."""

import re

import pytest
import torch
import torch.nn.functional as F

from conftest import FAST, load_script, pretrain_run

NUMBER = r"[-+]?\d+\.\d+"


rtd_probes = load_script("rtd_probes")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cache_dir):
    """A finished 4-step run of a 2-layer, 32-wide pair on 32-token sequences."""
    root = tmp_path_factory.mktemp("rtd_run")
    pretrain_run(
        root,
        cache_dir,
        *FAST,
        "model.discriminator.hidden_size=32",
        "model.discriminator.intermediate_size=64",
        "model.discriminator.embedding_size=32",
        "data.max_seq_length=32",
        "logger=none",
        "print_config=false",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "trainer.limit_val_batches=1",
    )
    return root


def probe(capsys, *argv) -> list[str]:
    rtd_probes.main([str(a) for a in argv])
    return capsys.readouterr().out.splitlines()


def row(lines: list[str], name: str) -> list[float]:
    """The numbers of the line that starts with ``name``."""
    (line,) = [line for line in lines if line.split()[:1] == [name]]
    return [float(x) for x in re.findall(NUMBER, line)]


@pytest.mark.slow
def test_state_prints_auc_gain_quantiles_and_cosines(run_dir, capsys):
    lines = probe(capsys, "state", run_dir, "--batches", "2")
    assert lines[1].split() == ["against", "AUC", "gain", "replaced"]
    for name in ("generator", "unigram"):
        auc, gain, replaced = row(lines, name)
        assert 0 <= auc <= 1 and gain <= 1 and 0 < replaced < 1
    (quantiles,) = [line for line in lines if line.startswith("P(replaced) vs generator: quantiles")]
    values = [float(v) for v in re.findall(r"% (\d+\.\d+)", quantiles)]
    assert len(values) == 5 and values == sorted(values) and 0 <= values[0] and values[-1] <= 1
    (cosine,) = [line for line in lines if line.startswith("mean token cosine:")]
    names = re.findall(r"(embeddings|layer \d+) ", cosine)
    cosines = [float(v) for v in re.findall(NUMBER, cosine)]
    assert names == ["embeddings", "layer 1", "layer 2"]
    assert len(cosines) == 3 and all(-1 <= c <= 1 for c in cosines)


@pytest.mark.slow
def test_alone_trains_a_fresh_discriminator_with_overrides(run_dir, capsys):
    lines = probe(
        capsys, "alone", run_dir, "--steps", "4", "--warmup", "1", "--eval-every", "2", "--eval-batches", "1",
        "--unigram-batches", "2", "--sinusoidal-positions", "model.discriminator.num_layers=1", "optimizer.eps=1e-8",
    )  # fmt: skip
    assert lines[0].startswith("discriminator alone vs unigram replacements:")
    assert lines[1].split() == ["step", "seconds", "train", "loss", "val", "AUC", "val", "gain"]
    rows = [line.split() for line in lines[2:]]
    assert [int(r[0]) for r in rows] == [2, 4]
    for _, seconds, loss, auc, gain in rows:
        assert float(seconds) >= 0 and float(loss) > 0 and 0 <= float(auc) <= 1 and float(gain) <= 1


@pytest.mark.slow
def test_bigram_detector_auc_against_both_corruptions(run_dir, capsys):
    lines = probe(capsys, "bigram", run_dir, "--train-batches", "4", "--batches", "2")
    assert lines[0].startswith("bigram counts of 4 training batches:")
    for name in ("unigram", "generator"):
        (auc,) = row(lines, name)
        assert 0 <= auc <= 1


def test_a_folder_without_a_run_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        rtd_probes.main(["state", str(tmp_path)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: " in error and "config.yaml" in error and "last.ckpt" in error


def test_an_unknown_override_key_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").touch()
    (tmp_path / "config.yaml").write_text("model:\n  discriminator:\n    num_layers: 2\n")
    with pytest.raises(SystemExit):
        rtd_probes.main(["alone", str(tmp_path), "model.discriminator.num_layer=1"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no key model.discriminator.num_layer" in error


def test_override_values_are_read_as_yaml():
    assert rtd_probes.parse_value("5e-4") == 5e-4
    assert rtd_probes.parse_value("2") == 2 and rtd_probes.parse_value("true") is True
    assert rtd_probes.parse_value("shared") == "shared" and rtd_probes.parse_value("null") is None


def test_token_cosine_is_the_mean_over_pairs_of_distinct_real_tokens():
    hidden = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    total, pairs = rtd_probes.token_cosine(hidden, mask)
    expected = []
    for b in range(2):
        n = int(mask[b].sum())
        unit = F.normalize(hidden[b, :n], dim=-1)
        cos = unit @ unit.T
        expected += cos[~torch.eye(n, dtype=torch.bool)].tolist()
    assert pairs == len(expected) == 3 * 2 + 5 * 4
    assert total / pairs == pytest.approx(sum(expected) / len(expected), abs=1e-5)
