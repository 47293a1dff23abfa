"""Hugging Face interop: export loads in transformers with equal outputs, and import back."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from conftest import FAST
from electra_lit.errors import ConfigError
from electra_lit.hf import export_pretrained, load_pretrained
from electra_lit.models import EncoderConfig, build_models
from electra_lit.runs.pretrain import train

CONFIG = EncoderConfig(
    vocab_size=120, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, embedding_size=16, dropout=0.0
)


def random_inputs(batch=3, seq=10, vocab=120):
    torch.manual_seed(1)
    ids = torch.randint(0, vocab, (batch, seq))
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return ids, types, mask


def perturbed_pair(sharing="shared"):
    generator, discriminator = build_models(CONFIG, generator_fraction=0.5, embedding_sharing=sharing)
    with torch.no_grad():  # biases and LayerNorms away from their init, so the mapping is tested
        for p in [*generator.parameters(), *discriminator.parameters()]:
            p.add_(torch.randn_like(p) * 0.05)
    return generator.eval(), discriminator.eval()


@pytest.mark.parametrize("sharing", ["shared", "gdes"])
def test_export_loads_in_transformers_with_equal_outputs(tmp_path, sharing, austen_tokenizer):
    generator, discriminator = perturbed_pair(sharing)
    export_pretrained(generator, discriminator, None, tmp_path)
    ids, types, mask = random_inputs()

    hf_disc, info = transformers.ElectraForPreTraining.from_pretrained(
        tmp_path / "discriminator", output_loading_info=True
    )
    assert not any(info.values()), info
    hf_logits = hf_disc.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
    ours = discriminator(ids, types, mask)
    real = mask.bool()
    torch.testing.assert_close(hf_logits[real], ours[real], atol=1e-5, rtol=1e-5)

    hf_model = transformers.ElectraModel.from_pretrained(tmp_path / "discriminator").eval()
    torch.testing.assert_close(
        hf_model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state[real],
        discriminator.encoder(ids, types, mask)[real],
        atol=1e-5,
        rtol=1e-5,
    )

    hf_gen, info = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "generator", output_loading_info=True)
    assert not any(info.values()), info
    all_positions = torch.arange(10).expand(3, -1)
    ours = generator(ids, types, mask, all_positions)
    theirs = hf_gen.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
    torch.testing.assert_close(theirs[real], ours[real], atol=1e-5, rtol=1e-5)


def test_import_of_transformers_models_gives_equal_outputs(tmp_path):
    torch.manual_seed(2)
    hf_disc = transformers.ElectraForPreTraining(
        transformers.ElectraConfig(
            vocab_size=120,
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    ).eval()
    hf_gen = transformers.ElectraForMaskedLM(
        transformers.ElectraConfig(
            vocab_size=120,
            embedding_size=16,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    ).eval()
    hf_gen.electra.embeddings.load_state_dict(hf_disc.electra.embeddings.state_dict())  # as ELECTRA shares them
    hf_disc.save_pretrained(tmp_path / "discriminator")
    hf_gen.save_pretrained(tmp_path / "generator")

    generator, discriminator = build_models(CONFIG, generator_fraction=0.5)
    load_pretrained(generator, discriminator, str(tmp_path))
    generator.eval(), discriminator.eval()
    ids, types, mask = random_inputs()
    real = mask.bool()
    torch.testing.assert_close(
        discriminator(ids, types, mask)[real],
        hf_disc(input_ids=ids, token_type_ids=types, attention_mask=mask).logits[real],
        atol=1e-5,
        rtol=1e-5,
    )
    ours = generator(ids, types, mask, torch.arange(10).expand(3, -1))
    torch.testing.assert_close(
        ours[real], hf_gen(input_ids=ids, token_type_ids=types, attention_mask=mask).logits[real], atol=1e-5, rtol=1e-5
    )

    # and back: exporting what we imported reproduces the transformers weights
    export_pretrained(generator, discriminator, None, tmp_path / "again")
    again = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "again" / "discriminator")
    for key, value in hf_disc.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)


def test_import_refuses_a_checkpoint_of_another_size(tmp_path):
    transformers.ElectraForPreTraining(
        transformers.ElectraConfig(
            vocab_size=120,
            embedding_size=16,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        )
    ).save_pretrained(tmp_path / "discriminator")
    generator, discriminator = build_models(CONFIG, generator_fraction=0.5)
    with pytest.raises(
        ConfigError, match="does not fit the configured discriminator \\(hidden_size: checkpoint 64, config 32\\)"
    ):
        load_pretrained(generator, discriminator, str(tmp_path))
    # a generator of another width: the error gives the override that fits it
    transformers.ElectraForMaskedLM(
        transformers.ElectraConfig(
            vocab_size=120,
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        )
    ).save_pretrained(tmp_path / "gen32")
    with pytest.raises(
        ConfigError,
        match=r"configured generator \(hidden_size: checkpoint 32, config 16; .*\); "
        r"set model.generator=\{hidden_size: 32, num_heads: 4, intermediate_size: 64, num_layers: 2\}",
    ):
        load_pretrained(generator, discriminator, {"generator": str(tmp_path / "gen32")})
    with pytest.raises(ConfigError, match="no discriminator/ folder"):
        load_pretrained(generator, discriminator, str(tmp_path / "discriminator"))


@pytest.mark.slow
def test_electra_export_command_and_init_from(compose_pretrain, tmp_path):
    train(compose_pretrain(*FAST, "trainer.max_steps=2", "trainer.val_check_interval=2"))
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    script = Path(sys.executable).parent / "electra-export"
    result = subprocess.run(
        [str(script), str(checkpoint), str(tmp_path / "hf")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name, cls in [
        ("discriminator", transformers.ElectraForPreTraining),
        ("generator", transformers.ElectraForMaskedLM),
    ]:
        model, info = cls.from_pretrained(tmp_path / "hf" / name, output_loading_info=True)
        assert not any(info.values()), info
        tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf" / name)
        encoded = tokenizer("It is a truth universally acknowledged")["input_ids"]
        assert encoded[0] == tokenizer.cls_token_id and encoded[-1] == tokenizer.sep_token_id
        assert tokenizer.unk_token_id not in encoded

    # continue pretraining from the exported directories: step 0 starts from those weights
    # (another seed: a fresh init would then differ from the exported weights)
    cfg = compose_pretrain(
        *FAST,
        "trainer.max_steps=1",
        "trainer.val_check_interval=1",
        f"init_from={tmp_path / 'hf'}",
        "seed=99",
        run_dir=tmp_path / "continued",
    )
    train(cfg)
    exported = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "hf" / "discriminator").state_dict()
    continued = torch.load(tmp_path / "continued" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    start = exported["electra.encoder.layer.0.intermediate.dense.weight"]
    after_one_step = continued["main_model.encoder.layers.0.ffn_in.weight"]
    assert (after_one_step - start).abs().max() < 1e-3  # the first step's LR is 0 (warmup)
    fresh = compose_pretrain(*FAST, "seed=99", run_dir=tmp_path / "fresh")
    from conftest import build

    _, _, fresh_module = build(fresh)
    assert (fresh_module.main_model.encoder.layers[0].ffn_in.weight - start).abs().max() > 0.01

    # weights of another vocabulary are refused, naming the tokenizer that fits them
    other_vocab = compose_pretrain(
        *FAST, "tokenizer=bert_uncased", f"init_from={tmp_path / 'hf'}", run_dir=tmp_path / "other"
    )
    with pytest.raises(
        ConfigError, match=r"was trained with another vocabulary \(8192 tokens; this run's tokenizer has 30522"
    ):
        train(other_vocab)


@pytest.mark.slow
def test_export_of_a_missing_checkpoint_is_one_line(tmp_path):
    script = Path(sys.executable).parent / "electra-export"
    result = subprocess.run(
        [str(script), str(tmp_path / "none.ckpt"), str(tmp_path / "out")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"electra-export: error: checkpoint {tmp_path / 'none.ckpt'}: no such file"


def test_an_mlm_objectives_main_model_exports_to_masked_lm_and_loads_back(tmp_path):
    _, main_model = build_models(CONFIG, main_head="mlm", with_generator=False)
    with torch.no_grad():
        for p in main_model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    main_model.eval()
    written = export_pretrained(None, main_model, None, tmp_path)
    assert written == [tmp_path / "masked_lm"] and not (tmp_path / "discriminator").exists()
    ids, types, mask = random_inputs()
    hf_model = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "masked_lm").eval()
    positions = torch.arange(ids.shape[1]).expand(ids.shape[0], -1)
    with torch.no_grad():
        ours = main_model(ids, types, mask, positions)
        torch.testing.assert_close(
            hf_model(ids, attention_mask=mask, token_type_ids=types).logits, ours, atol=1e-5, rtol=1e-5
        )
        _, fresh = build_models(CONFIG, main_head="mlm", with_generator=False)
        load_pretrained(None, fresh, str(tmp_path))  # finds masked_lm/ for a masked-LM main model
        torch.testing.assert_close(fresh.eval()(ids, types, mask, positions), ours)
