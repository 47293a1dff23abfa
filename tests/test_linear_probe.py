"""scripts/linear_probe.py: a frozen encoder's features per layer, read by a logistic regression."""

import torch

from conftest import load_script
from electra_lit.pretrained import load_pretrained_encoder

probe = load_script("linear_probe")


def test_features_are_the_real_tokens_mean_and_cls_after_each_layer(tiny_checkpoint):
    loaded = load_pretrained_encoder(str(tiny_checkpoint))
    encoder, tokenizer = loaded.encoder.eval(), loaded.tokenizer
    x = probe.features(encoder, tokenizer, ["She smiled.", "Mr. Darcy bowed to the whole party at once."], 16)
    hidden = encoder.config.hidden_size
    assert x.shape == (encoder.config.num_layers + 1, 2, 2 * hidden)
    # the short passage alone, unpadded: its features must not change with the other's padding
    alone = probe.features(encoder, tokenizer, ["She smiled."], 16)
    assert torch.allclose(x[:, 0], alone[:, 0], atol=1e-5)
    ids = torch.tensor([tokenizer.encode("She smiled.").ids])
    with torch.no_grad():
        top = encoder(ids, torch.zeros_like(ids))
    assert torch.allclose(x[-1, 0, :hidden], top[0].mean(0), atol=1e-5)  # mean of the real tokens
    assert torch.allclose(x[-1, 0, hidden:], top[0, 0], atol=1e-5)  # [CLS]


def test_a_word_that_decides_the_label_is_read_from_the_embeddings_and_tabled(tiny_checkpoint):
    loaded = load_pretrained_encoder(str(tiny_checkpoint))
    names = ["emma", "elinor", "anne"]
    places = ["town", "church", "the park", "london", "the shop", "bath"]
    # every name with every place: only the name tells the label
    train = [(f"{names[i % 3]} walked to {places[i // 3 % 6]} with a friend", i % 3) for i in range(36)]
    dev = [(f"later {names[i % 3]} walked to {places[i % 6]} with a friend", i % 3) for i in range(9)]
    accuracy = probe.evaluate(loaded.encoder, loaded.tokenizer, {"train": train, "dev": dev}, 16, 1e-3)
    assert len(accuracy) == loaded.encoder.config.num_layers + 1
    mean_of_tokens, _ = accuracy[0]
    assert mean_of_tokens == 1.0  # the name's embedding is in the mean, and it alone decides
    table = probe.table({"a.ckpt": accuracy, "shallow.ckpt": accuracy[:2]})
    lines = table.splitlines()
    assert lines[0].startswith("| checkpoint | features | embeddings | layer 1 |") and len(lines) == 2 + 4
    assert lines[2].startswith("| a.ckpt | mean of tokens | 1.000 |")
    header, shallow = lines[0].split("|"), lines[-1].split("|")
    assert len(shallow) == len(header) and shallow[-2] == "  "  # the shallow encoder's top layers are blank
