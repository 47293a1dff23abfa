"""Analytic FLOPs of one pretraining step, for throughput (FLOP/s) and model FLOPs utilisation (MFU).

Counting the shapes is exact and free, where measuring (``torch.utils.flop_counter``) needs a
forward and backward pass; ``tests/test_flops.py`` checks that the two agree. Only matrix
products are counted (2 FLOPs per multiply-add), as FLOP counters and MFU conventions do:
embedding look-ups, LayerNorm, GELU, softmax, dropout and losses are a rounding error next to them.

Notation: B sequences of S tokens (T = B * S token rows), P predicted (masked) positions per
sequence, H hidden size, E embedding size, I feed-forward size, V vocabulary, L layers.

One encoder forward (:class:`~electra_lit.models.Encoder`):

- embedding projection, only when E != H: (T, E) @ (E, H) -> 2 T E H
- per layer, L times:
    - query/key/value: (T, H) @ (H, 3H) -> 6 T H^2
    - scores Q K^T: per head (S, H/heads) @ (H/heads, S), all heads and sequences -> 2 B S^2 H
    - scores @ V: per head (S, S) @ (S, H/heads) -> 2 B S^2 H
    - attention output: (T, H) @ (H, H) -> 2 T H^2
    - feed-forward in and out: (T, H) @ (H, I) and (T, I) @ (I, H) -> 4 T H I

Heads, forward, over N rows (N = B * P where :meth:`MaskedLM.forward` gathers the masked positions):

- masked LM: dense (N, H) @ (H, E) -> 2 N H E, tied logits (N, E) @ (E, V) -> 2 N E V
- All-Tokens MLM (``mlm_copy``): the masked LM head over all T tokens, plus the copy gate
  (T, H) @ (H, 1) -> 2 T H
- discriminator: dense (T, H) @ (H, H) -> 2 T H^2, logit (T, H) @ (H, 1) -> 2 T H

Training: backward = 2 x forward (every matrix product has a gradient for each of its two
operands, each as costly as the product), so a step costs 3 x (generator forward + main model
forward). The generator's samples carry no gradient into the discriminator, and the optimizer
update is elementwise, so neither adds a matrix product.
"""

from __future__ import annotations

from electra_lit.models.encoder import EncoderConfig


def matmul_flops(rows: int, inner: int, cols: int) -> int:
    """(rows, inner) @ (inner, cols): one multiply and one add per term."""
    return 2 * rows * inner * cols


def encoder_flops(config: EncoderConfig, batch_size: int, seq_len: int) -> int:
    """Forward FLOPs of one :class:`~electra_lit.models.Encoder` over (batch_size, seq_len) tokens."""
    tokens, hidden = batch_size * seq_len, config.hidden_size
    flops = 0
    if config.embedding_dim != hidden:
        flops += matmul_flops(tokens, config.embedding_dim, hidden)
    per_layer = (
        matmul_flops(tokens, hidden, 3 * hidden)  # query, key, value
        + 2 * batch_size * matmul_flops(seq_len, hidden, seq_len)  # Q K^T and scores @ V, all heads
        + matmul_flops(tokens, hidden, hidden)  # attention output
        + 2 * matmul_flops(tokens, hidden, config.intermediate_size)  # feed-forward in and out
    )
    return flops + config.num_layers * per_layer


def masked_lm_flops(
    config: EncoderConfig, batch_size: int, seq_len: int, predictions: int, copy_head: bool = False
) -> int:
    """Forward FLOPs of a :class:`~electra_lit.models.MaskedLM`: the encoder, then the vocabulary
    head at ``predictions`` positions per sequence (every position for All-Tokens MLM, with
    ``copy_head``, whose copy gate also runs at every position)."""
    rows = batch_size * predictions
    head = matmul_flops(rows, config.hidden_size, config.embedding_dim) + matmul_flops(
        rows, config.embedding_dim, config.vocab_size
    )
    copy_gate = matmul_flops(batch_size * seq_len, config.hidden_size, 1) if copy_head else 0
    return encoder_flops(config, batch_size, seq_len) + head + copy_gate


def discriminator_flops(config: EncoderConfig, batch_size: int, seq_len: int) -> int:
    """Forward FLOPs of a :class:`~electra_lit.models.Discriminator`: the encoder and its per-token head."""
    tokens, hidden = batch_size * seq_len, config.hidden_size
    head = matmul_flops(tokens, hidden, hidden) + matmul_flops(tokens, hidden, 1)
    return encoder_flops(config, batch_size, seq_len) + head


def pretraining_flops(
    main: EncoderConfig,
    generator: EncoderConfig | None,
    batch_size: int,
    seq_len: int,
    predictions: int,
    main_head: str = "rtd",
) -> int:
    """Training FLOPs (forward + backward) of one pretraining batch of ``batch_size`` sequences of
    ``seq_len`` tokens with ``predictions`` masked slots each.

    ``main`` is the main model's config and ``main_head`` its head, as in
    :func:`~electra_lit.models.build_models`: ``rtd`` (ELECTRA's discriminator), ``mlm`` (a masked LM
    at the masked positions) or ``mlm_copy`` (All-Tokens MLM: the masked LM head and a copy gate at
    every position). ``generator`` is None for objectives without one (BERT's MLM); otherwise it
    predicts at the masked positions.
    """
    if main_head == "rtd":
        forward = discriminator_flops(main, batch_size, seq_len)
    elif main_head in ("mlm", "mlm_copy"):
        copy = main_head == "mlm_copy"
        forward = masked_lm_flops(main, batch_size, seq_len, seq_len if copy else predictions, copy_head=copy)
    else:
        raise ValueError(f"main_head={main_head!r} is not one of rtd, mlm, mlm_copy")
    if generator is not None:
        forward += masked_lm_flops(generator, batch_size, seq_len, predictions)
    return 3 * forward  # backward = 2 x forward
