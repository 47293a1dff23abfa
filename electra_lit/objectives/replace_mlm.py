"""The paper's two MLM ablations on a generator-corrupted input (no [MASK] tokens in it).

- Replace MLM: the masked positions hold generator samples; the main model (an MLM of the
  discriminator's size) predicts the original token there.
- All-Tokens MLM: same input; the main model predicts the identity of every real token, with a
  copy gate D (a sigmoid per token): p(token) = D * [token is the input token] + (1 - D) * softmax.
Both train the generator as ELECTRA does: loss = gen_loss + mlm_weight * mlm_loss; both take
ELECTRA's ``sampler`` and ``disallow_correct`` (:class:`~electra_lit.objectives.common.Sampling`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from electra_lit.errors import ConfigError
from electra_lit.models import MaskedLM
from electra_lit.objectives.common import (
    PretrainOutput,
    Sampling,
    TokenPredictions,
    corrupt,
    masked_lm_loss,
    weighted_mean,
)


class _GeneratorCorruptedMLM:
    def __init__(
        self,
        mlm_weight: float = 1.0,
        temperature: float = 1.0,
        sampler: str = "generator",
        disallow_correct: bool = False,
    ):
        if mlm_weight < 0:
            raise ConfigError(f"objective.mlm_weight={mlm_weight} must be >= 0")
        self.sampling = Sampling(sampler, temperature, disallow_correct)
        self.mlm_weight = mlm_weight
        self.temperature = temperature
        self.uses_generator = self.sampling.uses_generator  # the uniform sampler needs none

    def _output(self, corruption, mlm_loss: torch.Tensor, mlm: TokenPredictions) -> PretrainOutput:
        return PretrainOutput(
            loss=corruption.gen_loss + self.mlm_weight * mlm_loss,
            losses={"gen_loss": corruption.gen_loss, "mlm_loss": mlm_loss},
            gen=corruption.gen,
            mlm=mlm,
        )


class ReplaceMLM(_GeneratorCorruptedMLM):
    main_head = "mlm"

    def __call__(self, generator: MaskedLM, model: MaskedLM, batch: dict[str, torch.Tensor]) -> PretrainOutput:
        corruption = corrupt(self.sampling, generator, model, batch)
        positions, masked_ids, weights = batch["masked_positions"], batch["masked_ids"], batch["masked_weights"]
        logits = model(corruption.input_ids, batch["token_type_ids"], batch["attention_mask"], positions)
        mlm = TokenPredictions(logits.detach().argmax(-1), masked_ids, weights)
        return self._output(corruption, masked_lm_loss(logits, masked_ids, weights), mlm)


class AllTokensMLM(_GeneratorCorruptedMLM):
    main_head = "mlm_copy"

    def __call__(self, generator: MaskedLM, model: MaskedLM, batch: dict[str, torch.Tensor]) -> PretrainOutput:
        corruption = corrupt(self.sampling, generator, model, batch)
        attention_mask = batch["attention_mask"]
        original = batch["input_ids"].scatter(1, batch["masked_positions"], batch["masked_ids"])
        hidden = model.encoder(corruption.input_ids, batch["token_type_ids"], attention_mask)
        log_probs = F.log_softmax(model.head(hidden).float(), dim=-1)
        copy_logit = model.copy_out(hidden).squeeze(-1).float()
        log_copy, log_no_copy = F.logsigmoid(copy_logit), F.logsigmoid(-copy_logit)
        log_target = log_no_copy + log_probs.gather(-1, original.unsqueeze(-1)).squeeze(-1)
        copyable = corruption.input_ids == original
        log_p = torch.where(copyable, torch.logaddexp(log_copy, log_target), log_target)
        mlm_loss = weighted_mean(-log_p, attention_mask)
        with torch.no_grad():  # the mixture's most likely token
            mixture = log_probs.exp() * log_no_copy.exp().unsqueeze(-1)
            mixture.scatter_add_(-1, corruption.input_ids.unsqueeze(-1), log_copy.exp().unsqueeze(-1))
            mlm = TokenPredictions(mixture.argmax(-1), original, attention_mask)
        return self._output(corruption, mlm_loss, mlm)
