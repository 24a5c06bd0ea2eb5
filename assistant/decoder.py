"""A lean KV-cached pass over a Llama-family LLM's layers: generation's hot loop without transformers' machinery.

    decoder = Decoder.for_model(causal_lm, batch=2, capacity=300)    # None when the architecture is not supported
    hidden = decoder(embeds, key_mask)        # (B, T, H) → (B, T, H) final hidden states; the cache grows by T

Why: for a small model on a CPU, one decoding step spends more time in
transformers' per-layer orchestration (mask building, cache objects,
attention dispatch, output dataclasses) than in its matmuls. This module runs
the same layers with the same modules (`q_proj`, `mlp.gate_proj`, the norms'
weights, the model's own rotary embedding, so rope scaling variants carry
over, and peft's LoRA layers when present) in one short function per layer,
over a key/value cache pre-allocated per row (grown by half again when more positions come).

It never changes or subclasses the model: it reads its modules. Architectures
whose layers it reproduces exactly are listed in SUPPORTED; for any other,
`for_model` returns None and generation uses the transformers forward.
The tests check that both give the same logits and the same greedy tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from assistant.int8 import INT8_MAX_ROWS, cached_int8_rows, int8_head, int8_linear
from assistant.int8_step import Int8Step
from assistant.matmul_forms import fastest_form, product

# Decoder-only models whose layer is: RMSNorm → attention (rotary, GQA, optional q/k/v bias) → residual →
# RMSNorm → SiLU-gated MLP → residual, with every layer attending globally.
SUPPORTED = ("llama", "qwen2", "mistral")


class Decoder:
    def __init__(self, causal_lm, batch: int, capacity: int, dtype: torch.dtype, int8: bool = False):
        self.model = causal_lm.model  # the transformers backbone (embeddings are the caller's business)
        config = causal_lm.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        layers, device = len(self.model.layers), self.model.embed_tokens.weight.device
        self.keys = torch.zeros(layers, batch, self.kv_heads, capacity, self.head_dim, dtype=dtype, device=device)
        self.values = torch.zeros_like(self.keys)
        self.length = 0  # positions filled in every row
        self.key_mask = torch.zeros(batch, 0, dtype=torch.bool, device=device)  # (B, length): False for padding
        self.fused = [fuse_projections(layer) for layer in self.model.layers]
        self.int8 = int8  # plain weights read as int8 rows (assistant/int8.py); LoRA layers stay as they are
        # The slow matrix-vector paths that fastest_form works around are CPU ones (and it times on the CPU).
        self.on_cpu = device.type == "cpu"
        self._one_call_step: Int8Step | None | bool = False  # made on the first int8 step (False: not yet)
        if self.on_cpu:  # (int8 decoding too: its prompts run on the float weights)
            self._time_product_forms()

    @classmethod
    def for_model(cls, causal_lm, batch: int, capacity: int, int8: bool = False) -> Decoder | None:
        config = causal_lm.config
        if config.model_type not in SUPPORTED or config.hidden_act != "silu" or _windowed(config):
            return None
        if not hasattr(causal_lm.model.norm, "variance_epsilon"):  # an RMSNorm of another kind
            return None
        dtype = causal_lm.model.embed_tokens.weight.dtype
        return cls(causal_lm, batch, capacity, dtype, int8)

    def _time_product_forms(self) -> None:
        """Time the product forms once per machine for each shape of the layers' plain weights, each on all the
        layers' weights of that shape (as a decoding step reads them), so later lookups find the answer."""
        groups: dict[tuple, list[Tensor]] = {}
        for layer, fused in zip(self.model.layers, self.fused):
            attention, mlp = layer.self_attn, layer.mlp
            modules = [attention.o_proj, mlp.down_proj]
            if fused is None:
                modules += [attention.q_proj, attention.k_proj, attention.v_proj, mlp.gate_proj, mlp.up_proj]
            weights = [module.weight for module in modules if type(module) is nn.Linear]
            weights += [] if fused is None else [fused.qkv, fused.gate_up]
            for weight in weights:
                groups.setdefault((tuple(weight.shape), weight.dtype), []).append(weight)
        for weights in groups.values():
            fastest_form(weights)

    def _form(self, weight: Tensor) -> str:
        return fastest_form([weight]) if self.on_cpu else "linear"

    def __call__(self, embeds: Tensor, key_mask: Tensor) -> Tensor:
        """embeds (B, T, H) at the next T positions; key_mask (B, T) bool, False for padding (which then
        attends only to itself and is never attended to). Returns the final-norm hidden states (B, T, H)."""
        steps = embeds.shape[1]
        self._reserve(steps)
        start, self.length = self.length, self.length + steps
        self.key_mask = torch.cat([self.key_mask, key_mask], dim=1)
        positions = (self.key_mask.long().cumsum(-1) - 1).clamp(min=0)[:, start:]  # (B, T): padding skipped
        cos, sin = self.model.rotary_emb(embeds, positions)  # (B, T, head_dim), the model's own rope
        one_call = self._int8_step(embeds)
        if one_call is not None:
            return _rms_norm(self.model.norm, one_call(embeds, cos, sin, self.key_mask, start, self.keys,
                                                       self.values))
        mask = self._attention_mask(start, steps)
        hidden = embeds
        for index, layer in enumerate(self.model.layers):
            hidden = self._layer(index, layer, hidden, cos, sin, mask, start)
        return _rms_norm(self.model.norm, hidden)

    def _int8_step(self, embeds: Tensor) -> Int8Step | None:
        """The one-call int8 step (assistant/int8_step.py) for one new position of fp32 rows read as int8, where
        the kernel can run this model; None for every other pass."""
        if embeds.shape[1] != 1 or embeds.dtype != torch.float32 or not self._reads_int8(embeds) or \
                (torch.is_grad_enabled() and embeds.requires_grad):
            return None
        if self._one_call_step is False:
            self._one_call_step = Int8Step.for_decoder(self)
        return self._one_call_step

    def adopt(self, other: Decoder, count: int) -> None:
        """Start this empty one-row cache from the first `count` positions of `other`'s first row (a pass over
        the same start of a prompt with the same weights: assistant/prompt_reuse.py)."""
        if self.length or self.keys.shape[1] != 1:
            raise ValueError("only an empty one-row decoder can adopt another's positions")
        self._reserve(count)
        self.keys[:, :, :, :count] = other.keys[:, :1, :, :count]
        self.values[:, :, :, :count] = other.values[:, :1, :, :count]
        self.length = count
        self.key_mask = torch.ones(1, count, dtype=torch.bool, device=self.key_mask.device)

    def keep_first(self, count: int) -> None:
        """Keep only the first `count` rows of the cache: views, so no copy of the cache is ever made."""
        self.keys, self.values = self.keys[:, :count], self.values[:, :count]
        self.key_mask = self.key_mask[:count]

    def _layer(self, index: int, layer, hidden: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, start: int) -> Tensor:
        attention = layer.self_attn
        batch, steps, _ = hidden.shape
        fused = self.fused[index]
        x = _rms_norm(layer.input_layernorm, hidden)
        if fused is None:
            q, k, v = (self._linear(attention.q_proj, x), self._linear(attention.k_proj, x),
                       self._linear(attention.v_proj, x))
        else:  # one matmul for the three
            q, k, v = self._fused(attention, "qkv", x, fused.qkv, fused.qkv_bias).split(fused.qkv_sizes, dim=-1)
        q = q.view(batch, steps, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(batch, steps, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, steps, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        end = start + steps
        self.keys[index, :, :, start:end] = k
        self.values[index, :, :, start:end] = v
        out = F.scaled_dot_product_attention(q.to(self.keys.dtype), self.keys[index, :, :, :end],
                                             self.values[index, :, :, :end], attn_mask=mask,
                                             scale=attention.scaling, enable_gqa=self.heads != self.kv_heads)
        hidden = hidden + self._linear(attention.o_proj, out.transpose(1, 2).reshape(batch, steps, -1))
        x = _rms_norm(layer.post_attention_layernorm, hidden)
        mlp = layer.mlp
        if fused is None:
            gate, up = self._linear(mlp.gate_proj, x), self._linear(mlp.up_proj, x)
        else:
            gate, up = self._fused(mlp, "gate_up", x, fused.gate_up, None).chunk(2, dim=-1)
        return hidden + self._linear(mlp.down_proj, F.silu(gate) * up)

    def project(self, x: Tensor, weight: Tensor, bias: Tensor | None = None, name: str | None = None) -> Tensor:
        """x @ weight.T (+ bias) in this CPU's fastest form for the weight: for the output head's rows. With int8
        decoding, a `name`d weight is read as int8 rows (kept on the backbone under that name), its highest
        logits recomputed in float (int8_head)."""
        if self._reads_int8(x) and name is not None:
            return int8_head(x, cached_int8_rows(self.model, name, weight), weight, bias)
        return product(self._form(weight), x, weight, bias)

    def _fused(self, owner: nn.Module, name: str, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """A fused projection (q/k/v or gate/up) of x."""
        if self._reads_int8(x):
            return int8_linear(x, cached_int8_rows(owner, name, weight), bias)
        return self.project(x, weight, bias)

    def _linear(self, module: nn.Module, x: Tensor) -> Tensor:
        """module(x), for a plain nn.Linear in this CPU's fastest product form (assistant/matmul_forms.py), or as
        int8."""
        if type(module) is not nn.Linear:
            return module(x)  # peft's LoRA layers: they add their own low-rank term
        if self._reads_int8(x):
            return int8_linear(x, cached_int8_rows(module, "weight", module.weight), module.bias)
        return product(self._form(module.weight), x, module.weight, module.bias)

    def _reads_int8(self, x: Tensor) -> bool:
        """With int8 decoding, a product of a few rows (a decoding step: its time is reading the weights) reads
        them as int8; one of more rows than INT8_MAX_ROWS (a prompt: its time is arithmetic) stays in float,
        where the float GEMM outruns the int8 kernel."""
        return self.int8 and x.numel() // x.shape[-1] <= INT8_MAX_ROWS

    def _attention_mask(self, start: int, steps: int) -> Tensor | None:
        """(B, 1, T, start+T) bool: causal, no padding keys; a padding query sees itself (never a NaN row).
        None when one new position may see every key (a decoding step without padding)."""
        if steps == 1 and bool(self.key_mask.all()):
            return None
        query = torch.arange(start, start + steps, device=self.key_mask.device)[:, None]
        key = torch.arange(start + steps, device=self.key_mask.device)[None, :]
        allowed = (key <= query)[None] & self.key_mask[:, None, :]  # (B, T, S)
        allowed |= (key == query)[None]
        return allowed[:, None]

    def _reserve(self, steps: int) -> None:
        capacity = self.keys.shape[3]
        if self.length + steps <= capacity:
            return
        grown = max(capacity + capacity // 2, self.length + steps)
        shape = (*self.keys.shape[:3], grown, self.head_dim)
        keys, values = self.keys.new_zeros(shape), self.values.new_zeros(shape)
        keys[:, :, :, :self.length] = self.keys[:, :, :, :self.length]
        values[:, :, :, :self.length] = self.values[:, :, :, :self.length]
        self.keys, self.values = keys, values


@dataclass
class FusedProjections:
    """A layer's q/k/v weights stacked into one matrix and its gate/up weights into another, so a decoding step
    runs two matrix products where it ran five. The layer's own modules hold views into these (no copy)."""
    qkv: Tensor
    qkv_bias: Tensor | None
    qkv_sizes: tuple[int, int, int]
    gate_up: Tensor


def fuse_projections(layer: nn.Module) -> FusedProjections | None:
    """The layer's fused projections, made on first use and re-made when its weights were replaced (a cast
    with .to() makes new tensors); None when they cannot be fused: LoRA still apart (peft's layers), or a
    gate/up bias, or weights that train (an optimizer holds them: they must stay the tensors they are)."""
    attention, mlp = layer.self_attn, layer.mlp
    parts = (attention.q_proj, attention.k_proj, attention.v_proj, mlp.gate_proj, mlp.up_proj)
    if any(type(module) is not nn.Linear or module.weight.requires_grad for module in parts):
        return None
    if mlp.gate_proj.bias is not None or mlp.up_proj.bias is not None:
        return None
    if len({module.bias is None for module in parts[:3]}) > 1:
        return None
    fused = getattr(layer, "_glyph_fused", None)
    if fused is not None and _still_views(fused, parts):
        return fused
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    biased = q.bias is not None
    with torch.inference_mode(False):  # generation runs in inference mode; the weights must stay trainable-through
        fused = FusedProjections(_stack([q, k, v], "weight"), _stack([q, k, v], "bias") if biased else None,
                                 (q.out_features, k.out_features, v.out_features),
                                 _stack([mlp.gate_proj, mlp.up_proj], "weight"))
    layer._glyph_fused = fused
    return fused


@torch.no_grad()
def _stack(modules: list[nn.Linear], name: str) -> Tensor:
    """One tensor of the modules' `name` tensors, stacked by rows; each module's parameter becomes a view of
    its rows (its old tensor is freed), so the model's weights are not held twice. Tensors that already lie
    back to back in one storage (as a memory-mapped copy can hold them: assistant/mapped_weights.py) are
    stacked as a view over them, without a copy."""
    tensors = [getattr(module, name) for module in modules]
    adjacent = _back_to_back(tensors)
    if adjacent is not None:
        return adjacent
    stacked = torch.cat(tensors)
    start = 0
    for module in modules:
        rows = getattr(module, name).shape[0]
        setattr(module, name, nn.Parameter(stacked[start:start + rows], requires_grad=False))
        start += rows
    return stacked


def _back_to_back(tensors: list[Tensor]) -> Tensor | None:
    """The tensors' rows as one tensor viewing their storage, when each starts where the one before ends."""
    first = tensors[0]
    storage, offset = first.untyped_storage(), first.storage_offset()
    for tensor in tensors:
        if (not tensor.is_contiguous() or tensor.dtype != first.dtype or tensor.shape[1:] != first.shape[1:]
                or tensor.untyped_storage().data_ptr() != storage.data_ptr() or tensor.storage_offset() != offset):
            return None
        offset += tensor.numel()
    rows = sum(tensor.shape[0] for tensor in tensors)
    return torch.empty(0, dtype=first.dtype, device=first.device).set_(storage, first.storage_offset(),
                                                                        (rows, *first.shape[1:]))


def _still_views(fused: FusedProjections, parts: tuple[nn.Linear, ...]) -> bool:
    q, k, v, gate, up = parts
    width = q.weight.shape[1] * q.weight.element_size()
    expected = [(q.weight, fused.qkv, 0), (k.weight, fused.qkv, q.out_features),
                (v.weight, fused.qkv, q.out_features + k.out_features),
                (gate.weight, fused.gate_up, 0), (up.weight, fused.gate_up, gate.out_features)]
    return all(weight.dtype == whole.dtype and weight.data_ptr() == whole.data_ptr() + row * width
               for weight, whole, row in expected)


def _rms_norm(norm: nn.Module, x: Tensor) -> Tensor:
    """The model's RMSNorm as one fused operator (transformers' runs eight): weight · x / √(mean(x²) + ε)."""
    return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding as transformers' Llama applies it: x·cos + rotate_half(x)·sin, heads on dim 1."""
    cos, sin = cos[:, None], sin[:, None]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def _windowed(config) -> bool:
    """A sliding window that some layer actually uses: those layers would need a windowed mask."""
    window = getattr(config, "sliding_window", None)
    if not window:
        return False
    if config.model_type == "qwen2":
        return bool(getattr(config, "use_sliding_window", False))
    return window < config.max_position_embeddings
