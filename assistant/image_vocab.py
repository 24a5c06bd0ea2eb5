"""The image vocabulary: `<image>`, `<boi>`, `<eoi>` and one token per VQ code, after the LLM's own tokens.

    vocab = ImageVocabulary.create(tokens, first_id=len(tokenizer), codebook=vq.quantizer.codes(),
                                   input_rows=llm.get_input_embeddings().weight,
                                   output_rows=llm.get_output_embeddings().weight)
    embeds = vocab.embed(input_ids, llm.get_input_embeddings())        # (B, T, H)
    logits = vocab.logits(hidden, llm.get_output_embeddings())         # (B, T, first_id + 3 + K)

Ids: `image_id = first_id`, `boi_id = first_id + 1`, `eoi_id = first_id + 2`,
code c is `code_start + c` with `code_start = first_id + 3`. `first_id` is the
tokenizer's length, which can be smaller than the LLM's embedding matrix (Qwen2
pads it): those padding rows are never read, and never sampled.

The LLM's embedding matrices are never resized or copied. New ids read their
input rows from this module, and the logits of the new ids come from this
module's output rows, so every original row stays frozen even when the LLM
ties its input and output embeddings (SmolLM2 does), and a checkpoint holds
only the new rows.

How the rows start:
- code input rows are `mean + code_map(codebook)`: a learned map from the VQ
  codebook vectors (as in Janus' generation aligner), so codes that look alike
  start with alike embeddings and the map trains for all codes at once;
- `<image>`, `<boi>`, `<eoi>` input rows and every new output row start at the
  mean of the original rows (what Hugging Face's resize_token_embeddings does),
  so their logits start at an average token's logit: adding the vocabulary
  changes nothing the frozen LLM would say until training moves them.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from assistant.config import ImageTokens

SPECIALS = 3  # <image>, <boi>, <eoi>


class ImageVocabulary(nn.Module):
    def __init__(self, tokens: ImageTokens, first_id: int, hidden_size: int, codebook: Tensor):
        super().__init__()
        self.tokens = tokens
        self.first_id = first_id
        self.image_id, self.boi_id, self.eoi_id = first_id, first_id + 1, first_id + 2
        self.code_start = first_id + SPECIALS
        self.codebook_size, code_dim = codebook.shape
        self.size = first_id + SPECIALS + self.codebook_size  # the whole vocabulary: original + new ids
        # The VQ codebook is frozen and belongs to the VQ model; it is not saved with the vocabulary.
        self.register_buffer("codebook", codebook.detach().clone(), persistent=False)  # (K, code_dim)
        self.register_buffer("input_mean", torch.zeros(hidden_size))  # (H,) mean original input row
        self.special_input = nn.Parameter(torch.zeros(SPECIALS, hidden_size))  # (3, H)
        self.code_map = nn.Sequential(nn.Linear(code_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
        self.output = nn.Parameter(torch.zeros(SPECIALS + self.codebook_size, hidden_size))  # (3 + K, H)

    @classmethod
    def create(cls, tokens: ImageTokens, first_id: int, codebook: Tensor, input_rows: Tensor,
               output_rows: Tensor) -> ImageVocabulary:
        """A fresh vocabulary whose rows start from the LLM's original rows (see the module docstring)."""
        input_rows, output_rows = input_rows[:first_id].detach().float(), output_rows[:first_id].detach().float()
        vocab = cls(tokens, first_id, input_rows.shape[1], codebook)
        with torch.no_grad():
            vocab.input_mean.copy_(input_rows.mean(0))
            vocab.special_input.copy_(input_rows.mean(0).expand(SPECIALS, -1))
            vocab.output.copy_(output_rows.mean(0).expand(len(vocab.output), -1))
            # The map starts small, matching the spread of real embeddings, so code rows start near the mean.
            last = vocab.code_map[2]
            nn.init.normal_(last.weight, std=float(input_rows.std()) / last.in_features ** 0.5)
            nn.init.zeros_(vocab.code_map[2].bias)
        return vocab

    def token_strings(self) -> list[str]:
        """The new tokens' text, in id order, as added to the tokenizer."""
        t = self.tokens
        return [t.image, t.boi, t.eoi] + [t.code_format.format(c) for c in range(self.codebook_size)]

    def code_ids(self, codes: Tensor) -> Tensor:
        """VQ codebook indices → token ids."""
        return codes + self.code_start

    def codes_of(self, ids: Tensor) -> Tensor:
        """Token ids of code tokens → VQ codebook indices."""
        return ids - self.code_start

    def input_rows(self) -> Tensor:
        """(3 + K, H) input embeddings of the new ids."""
        codes = self.input_mean + self.code_map(self.codebook.to(self.input_mean.dtype))
        return torch.cat([self.special_input, codes])

    def embed(self, input_ids: Tensor, base: nn.Embedding) -> Tensor:
        """(B, T) ids over the whole vocabulary → (B, T, H)."""
        if int(input_ids.max()) >= self.size or int(input_ids.min()) < 0:
            raise ValueError(f"token ids must lie in [0, {self.size}); "
                             f"got {int(input_ids.min())}..{int(input_ids.max())}")
        new = input_ids >= self.first_id
        embeds = base(input_ids.masked_fill(new, 0))  # (B, T, H); new positions are overwritten below
        if new.any():
            rows = self.rows_of(input_ids[new]).to(embeds.dtype)
            embeds = embeds.masked_scatter(new.unsqueeze(-1), rows)
        return embeds

    def rows_of(self, ids: Tensor) -> Tensor:
        """(n,) new ids → (n, H) input rows, the same as input_rows()[ids − first_id], with the code map run only
        on the codes asked for: a drawing step embeds one code, not all K."""
        offset = ids - self.first_id
        specials = self.special_input[offset.clamp(max=SPECIALS - 1)]  # (n, H)
        codebook = self.codebook[(offset - SPECIALS).clamp(min=0)].to(self.input_mean.dtype)  # (n, code_dim)
        codes = self.input_mean + self.code_map(codebook)  # (n, H)
        return torch.where((offset < SPECIALS)[:, None], specials, codes)

    def code_rows(self) -> Tensor:
        """(K, H) output rows of the code tokens: image mode's whole head."""
        return self.output[SPECIALS:]

    def logits(self, hidden: Tensor, head: nn.Module) -> Tensor:
        """(..., H) → (..., size) logits over the original tokens and the new ones."""
        original = head(hidden)[..., :self.first_id]
        return torch.cat([original, hidden @ self.output.to(hidden.dtype).T], dim=-1)
