"""The encoder, generator and discriminator against the spec: shapes, sharing, sizes, init."""

import pytest
import torch

from electra_lit.models import Discriminator, EncoderConfig, build_models, generator_config


def small_config(**kw):
    base = dict(
        vocab_size=120, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, embedding_size=16, dropout=0.0
    )
    return EncoderConfig(**{**base, **kw})


def random_batch(vocab=120, batch=3, seq=12, predictions=4):
    ids = torch.randint(5, vocab, (batch, seq))
    positions = torch.stack([torch.randperm(seq - 1)[:predictions] + 1 for _ in range(batch)])
    return ids, torch.zeros_like(ids), torch.ones_like(ids), positions


def test_generator_head_runs_only_at_masked_positions():
    gen, _ = build_models(small_config(), generator_fraction=0.5)
    ids, types, mask, positions = random_batch()
    seen = []
    gen.head_dense.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape))
    logits = gen(ids, types, mask, positions)
    assert logits.shape == (3, 4, 120)
    assert seen == [torch.Size([3, 4, gen.encoder.config.hidden_size])]
    # equal to running the head on every position and picking the masked ones
    hidden = gen.encoder(ids, types, mask)
    full = torch.nn.functional.linear(
        gen.head_norm(torch.nn.functional.gelu(gen.head_dense(hidden))),
        gen.encoder.embeddings.word.weight,
        gen.output_bias,
    )
    picked = full.gather(1, positions[..., None].expand(-1, -1, 120))
    torch.testing.assert_close(logits, picked)


def test_discriminator_gives_one_logit_per_token():
    disc = Discriminator(small_config())
    ids, types, mask, _ = random_batch()
    assert disc(ids, types, mask).shape == (3, 12)


def test_default_sharing_is_the_specs():
    gen, disc = build_models(small_config(), generator_fraction=0.25, embedding_sharing="shared")
    ge, de = gen.encoder.embeddings, disc.encoder.embeddings
    assert ge is de
    for name in ("word", "position", "token_type", "norm"):
        assert getattr(ge, name).weight is getattr(de, name).weight
    assert ge.norm.bias is de.norm.bias
    # each model projects the shared 16-dim embeddings to its own width
    assert gen.encoder.embeddings_project is not disc.encoder.embeddings_project
    assert gen.encoder.embeddings_project.weight.shape == (8, 16)
    assert disc.encoder.embeddings_project.weight.shape == (32, 16)
    # the generator's output layer is the word embedding matrix itself
    assert gen.encoder.embeddings.word.weight.data_ptr() == disc.encoder.embeddings.word.weight.data_ptr()
    # the rest is separate
    gen_ids = {id(p) for p in gen.encoder.layers.parameters()}
    assert not gen_ids & {id(p) for p in disc.encoder.layers.parameters()}


def test_generator_embedding_grad_false_keeps_the_generators_loss_off_the_shared_embeddings():
    torch.manual_seed(0)
    gen, disc = build_models(small_config(), generator_fraction=0.5, generator_embedding_grad=False)
    reference, _ = build_models(small_config(), generator_fraction=0.5)
    reference.load_state_dict(gen.state_dict())
    ids, types, mask, positions = random_batch()
    # the same logits as the generator that trains its embeddings
    torch.testing.assert_close(gen(ids, types, mask, positions), reference(ids, types, mask, positions))

    gen(ids, types, mask, positions).logsumexp(-1).sum().backward()
    shared = gen.encoder.embeddings
    assert all(p.grad is None for p in shared.parameters())  # not the tables, not the LayerNorm
    assert gen.encoder.layers[0].qkv.weight.grad is not None and gen.output_bias.grad is not None
    disc(ids, types, mask).sum().backward()
    assert all(p.grad is not None for p in shared.parameters())  # the discriminator still trains them
    with pytest.raises(ValueError, match="generator_embedding_grad=false needs embedding_sharing=shared"):
        build_models(small_config(), embedding_sharing="untied", generator_embedding_grad=False)


def test_untied_sharing_shares_nothing():
    gen, disc = build_models(small_config(), generator_fraction=0.5, embedding_sharing="untied")
    assert not {id(p) for p in gen.parameters()} & {id(p) for p in disc.parameters()}


def test_unknown_sharing_mode_is_refused():
    with pytest.raises(ValueError, match="embedding_sharing='tied' is not one of shared, untied, all, gdes"):
        build_models(small_config(), generator_fraction=0.5, embedding_sharing="tied")


@pytest.mark.parametrize(
    "disc, fraction, expected",
    [
        (dict(hidden_size=256, num_heads=4, intermediate_size=1024), 0.25, (64, 1, 256)),  # small
        (dict(hidden_size=768, num_heads=12, intermediate_size=3072), 1 / 3, (256, 4, 1024)),  # base
        (dict(hidden_size=1024, num_heads=16, intermediate_size=4096), 0.25, (256, 4, 1024)),  # large
    ],
)
def test_generator_sizes_follow_the_spec_table(disc, fraction, expected):
    gen = generator_config(EncoderConfig(vocab_size=10, num_layers=12, **disc), fraction)
    assert (gen.hidden_size, gen.num_heads, gen.intermediate_size) == expected
    assert gen.num_layers == 12  # same depth as the discriminator


def test_padding_does_not_change_real_positions():
    disc = Discriminator(small_config()).eval()
    ids, types, mask, _ = random_batch(batch=1)
    mask[0, 8:] = 0
    other = ids.clone()
    other[0, 8:] = 7  # different tokens in the padding
    torch.testing.assert_close(disc(ids, types, mask)[0, :8], disc(other, types, mask)[0, :8])


def test_init_is_truncated_normal_002_zero_bias_unit_layernorm():
    disc = Discriminator(small_config(vocab_size=2000, hidden_size=128, intermediate_size=512, embedding_size=128))
    weight = disc.encoder.layers[0].ffn_in.weight
    assert weight.abs().max() <= 0.04 + 1e-7
    assert 0.015 < weight.std() < 0.02  # a normal(0.02) truncated at 2 std has std ~0.0176
    assert torch.all(disc.encoder.layers[0].ffn_in.bias == 0)
    assert torch.all(disc.encoder.layers[0].ffn_norm.weight == 1)
    assert disc.encoder.embeddings.word.weight.abs().max() <= 0.04 + 1e-7


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="hidden_size=30 is not divisible by num_heads=4"):
        small_config(hidden_size=30)
    with pytest.raises(ValueError, match="generator_fraction=1.5"):
        generator_config(small_config(), 1.5)
