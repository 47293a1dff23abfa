"""A BERT-style post-LayerNorm Transformer encoder in plain PyTorch.

The generator and the discriminator of ELECTRA are both this encoder, of different widths.
Attention goes through ``F.scaled_dot_product_attention`` so that PyTorch picks the fastest
kernel for the device and dtype (FlashAttention, memory-efficient or math). Everything here
has static shapes and no data-dependent Python control flow, so it compiles and graph-captures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(kw_only=True)
class EncoderSizes:
    """An encoder's sizes and regularisation, all but the vocabulary: what a config sets
    (``model.discriminator``), the vocabulary coming from the tokenizer. Each field's comment is
    its documentation (docs/configuration.md)."""

    hidden_size: int  # the encoder's width
    num_layers: int  # transformer layers
    num_heads: int  # attention heads; hidden_size must be a multiple
    intermediate_size: int  # the feed-forward layers' inner size
    # word embedding size, projected to hidden_size when different; null = hidden_size
    embedding_size: int | None = None
    max_position_embeddings: int = 512  # the longest sequence the position table holds
    type_vocab_size: int = 2  # segment (token type) embeddings
    dropout: float = 0.1  # dropout on embeddings, attention and feed-forward outputs
    layer_norm_eps: float = 1e-12  # LayerNorm's epsilon
    initializer_range: float = 0.02  # std of the truncated-normal weight init

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.initializer_range <= 0:
            raise ValueError(f"initializer_range={self.initializer_range} must be positive")

    @property
    def embedding_dim(self) -> int:
        return self.embedding_size or self.hidden_size


@dataclass(kw_only=True)
class EncoderConfig(EncoderSizes):
    """Sizes of one encoder with its vocabulary: what an :class:`Encoder` is built from."""

    vocab_size: int  # word pieces in the vocabulary: the tokenizer's size

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size={self.vocab_size} must be a positive integer")
        super().__post_init__()


class Embeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout.

    ELECTRA shares this whole module (the LayerNorm included) between generator and discriminator.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        dim = config.embedding_dim
        self.word = nn.Embedding(config.vocab_size, dim)
        self.position = nn.Embedding(config.max_position_embeddings, dim)
        self.token_type = nn.Embedding(config.type_vocab_size, dim)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """(batch, seq, embedding_dim). ``detached``: the same values, but no gradient reaches these
        tables or the LayerNorm (a generator whose loss must not move embeddings it shares)."""
        seq_len = input_ids.shape[1]
        if not detached:
            x = self.word(input_ids) + self.position.weight[:seq_len] + self.token_type(token_type_ids)
            return self.dropout(self.norm(x))
        x = (
            F.embedding(input_ids, self.word.weight.detach())
            + self.position.weight[:seq_len].detach()
            + F.embedding(token_type_ids, self.token_type.weight.detach())
        )
        norm = self.norm
        return self.dropout(F.layer_norm(x, norm.normalized_shape, norm.weight.detach(), norm.bias.detach(), norm.eps))


class TransformerLayer(nn.Module):
    """Self-attention and feed-forward blocks, each followed by residual add and LayerNorm."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        hidden = config.hidden_size
        self.num_heads = config.num_heads
        self.attention_dropout = config.dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)  # one matmul for query, key and value
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(hidden, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq_len, hidden = x.shape
        head_dim = hidden // self.num_heads
        qkv = self.qkv(x).view(batch, seq_len, 3, self.num_heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
        attended = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attention_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        attended = attended.transpose(1, 2).reshape(batch, seq_len, hidden)
        x = self.attention_norm(x + self.dropout(self.attention_out(attended)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


class Encoder(nn.Module):
    """Embeddings, an optional projection to the hidden size, and the Transformer layers.

    Pass ``embeddings`` to share an existing :class:`Embeddings` module with another encoder;
    ``embedding_grad=False`` then keeps this encoder's loss from moving them.
    The projection (``embeddings_project``) is always this encoder's own.
    """

    def __init__(self, config: EncoderConfig, embeddings: Embeddings | None = None, embedding_grad: bool = True):
        super().__init__()
        self.config = config
        self.embedding_grad = embedding_grad
        self.embeddings = embeddings if embeddings is not None else Embeddings(config)
        if self.embeddings.word.embedding_dim != config.embedding_dim:
            raise ValueError(
                f"shared embeddings have size {self.embeddings.word.embedding_dim}, "
                f"this encoder expects embedding_size={config.embedding_dim}"
            )
        self.embeddings_project = (
            nn.Linear(config.embedding_dim, config.hidden_size) if config.embedding_dim != config.hidden_size else None
        )
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.num_layers))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (batch, seq, hidden). ``attention_mask`` is 1 for real tokens, 0 for padding."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids, detached=not self.embedding_grad)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        # (batch, 1, 1, seq) boolean: every query may attend to every real key.
        mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        for layer in self.layers:
            x = layer(x, mask)
        return x


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """ELECTRA's initialisation: truncated normal (2 std) weights, zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
