"""A whole int8 decoding step of a Llama-family decoder's layers in one call to a small C kernel.

    step = Int8Step.for_decoder(decoder)         # None where it cannot run (no compiler, a bias, fp16 cache...)
    hidden = step(embeds, cos, sin, key_mask, start, keys, values)   # (B, 1, H): what the layers would give

Why: with int8 weights (assistant/int8.py) a decoding step of SmolLM2 reads about 106 MB, some 3 ms at this
machine's memory speed, yet PyTorch spends about 10 ms on it: each of the hundreds of small operators a step runs
(norms, rotary, cache writes, attention, four products and their casts per layer) costs microseconds of dispatch, and
its int8 product kernel wants bf16 rows (a cast there and back per product). The kernel
(assistant/kernels/int8_decode_step.c) runs each layer as one pass in fp32 with the same int8 rows, on
PyTorch's own OpenMP threads (it links the libgomp that torch loaded), the products split over them by rows and
the weights fetched ahead of use. On the bench's smollm2 config a step takes 2.3-2.9 ms for one row and 2.8-3.5 ms
for a guided drawing's two, against 7.4-8.5 and 8.0-9.4 ms for PyTorch's int8 step (2 AVX-512 cores, 100
positions).

The source is compiled on first use with the system's C compiler (`cc -O3 -march=native`: the machine's own
vector instructions) into GLYPH_CACHE/kernels, under a key of the source, the compiler and this CPU, so later
processes load it in milliseconds. Without a compiler, or when it fails, decoding keeps the PyTorch path
(assistant/decoder.py) and says so once in the log: the same int8 weights, with bf16 activations around PyTorch's
int8 product (so near the kernel's results, not equal), only slower.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from assistant.int8 import Int8Rows, cached_int8_rows
from assistant.machine import cache_root, machine_key

log = logging.getLogger(__name__)
SOURCE = Path(__file__).parent / "kernels" / "int8_decode_step.c"
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
VECTOR = 16  # the kernel reads rows 16 values at a time, weight rows 4 at a time: widths must be multiples of 16


class _Layer(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in (
        "qkv", "o", "gate_up", "down", "qkv_scale", "o_scale", "gate_up_scale", "down_scale",
        "input_norm", "post_norm")]


class _Shape(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "rows", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "position",
        "cache_layer", "cache_row", "cache_head")] + [("eps", ctypes.c_float), ("scaling", ctypes.c_float),
                                                      ("threads", ctypes.c_int)]


@functools.cache
def kernel() -> ctypes.CDLL | None:
    """The compiled kernel, built once per machine; None (logged once) where it cannot be built or loaded."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        log.warning("no C compiler found: int8 decoding runs the slower PyTorch step (install gcc)")
        return None
    try:
        library = _built(compiler)
        step = ctypes.CDLL(str(library)).glyph_int8_decode_step
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("could not build the int8 decoding kernel (%s): decoding runs the slower PyTorch step", error)
        return None
    step.restype = None
    step.argtypes = [ctypes.POINTER(_Layer), ctypes.c_int64, ctypes.POINTER(_Shape)] + [ctypes.c_void_p] * 7
    return step


def _built(compiler: str) -> Path:
    """The shared library for this source, compiler and CPU, compiled (atomically) when not yet there."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256(SOURCE.read_bytes() + version.encode() + " ".join(FLAGS).encode()).hexdigest()[:12]
    library = cache_root() / "kernels" / f"int8_decode_step-{key}-{machine_key()}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
        built = Path(scratch) / library.name
        done = subprocess.run([compiler, *FLAGS, "-o", str(built), str(SOURCE), "-lm"], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            raise OSError(f"{compiler} failed: {done.stderr.strip()[-400:]}")
        os.replace(built, library)
    return library


class Int8Step:
    """The int8 rows of every layer of a decoder (the same cached rows as its PyTorch path), laid out for the kernel."""

    def __init__(self, step, decoder) -> None:
        self.step = step
        self.keep: list[Tensor | Int8Rows] = []  # every tensor the kernel's pointers point into
        layers = list(decoder.model.layers)
        self.layers = (_Layer * len(layers))(*[self._layer(layer, fused) for layer, fused in zip(layers,
                                                                                                  decoder.fused)])
        attention, config = layers[0].self_attn, decoder.model.config
        self.heads, self.kv_heads, self.head_dim = decoder.heads, decoder.kv_heads, decoder.head_dim
        self.intermediate = config.intermediate_size
        self.eps, self.scaling = layers[0].input_layernorm.variance_epsilon, attention.scaling

    @classmethod
    def for_decoder(cls, decoder) -> Int8Step | None:
        """The step for this decoder's model, or None where the kernel does not do what its layers do."""
        if decoder.keys.dtype != torch.float32 or decoder.keys.device.type != "cpu" or not _plain(decoder):
            return None
        config = decoder.model.config
        if config.hidden_size % VECTOR or config.intermediate_size % VECTOR or decoder.head_dim % VECTOR or \
                decoder.heads % decoder.kv_heads or decoder.heads * decoder.head_dim != config.hidden_size:
            return None
        step = kernel()
        return None if step is None else cls(step, decoder)

    def _layer(self, layer: nn.Module, fused) -> _Layer:
        attention, mlp = layer.self_attn, layer.mlp
        packs = [cached_int8_rows(attention, "qkv", fused.qkv), cached_int8_rows(attention.o_proj, "weight",
                 attention.o_proj.weight), cached_int8_rows(mlp, "gate_up", fused.gate_up),
                 cached_int8_rows(mlp.down_proj, "weight", mlp.down_proj.weight)]
        scales = [pack.scales.float() for pack in packs]
        norms = [layer.input_layernorm.weight.detach().contiguous(), layer.post_attention_layernorm.weight.detach()
                 .contiguous()]
        self.keep += packs + scales + norms
        return _Layer(*[pack.values.data_ptr() for pack in packs], *[scale.data_ptr() for scale in scales],
                      *[norm.data_ptr() for norm in norms])

    def __call__(self, embeds: Tensor, cos: Tensor, sin: Tensor, key_mask: Tensor, start: int, keys: Tensor,
                 values: Tensor) -> Tensor:
        """embeds (B, 1, H) fp32 at position `start` of every row; cos/sin (B, 1, head_dim); key_mask (B, start+1)
        bool; keys/values the decoder's (layers, B, kv_heads, capacity, head_dim) cache, written at `start`.
        Returns the last layer's hidden states (B, 1, H), before the final norm."""
        rows, _, width = embeds.shape
        hidden = embeds.reshape(rows, width).to(torch.float32, copy=True).contiguous()
        cos, sin = cos.reshape(rows, -1).float().contiguous(), sin.reshape(rows, -1).float().contiguous()
        mask = key_mask.to(torch.bool).contiguous()  # one byte a position, as the kernel reads it
        qkv = (self.heads + 2 * self.kv_heads) * self.head_dim
        work = torch.empty(rows * (2 * width + qkv + 3 * self.intermediate + self.heads * (start + 1)))
        shape = _Shape(rows, width, self.heads, self.kv_heads, self.head_dim, self.intermediate, start,
                       keys.stride(0), keys.stride(1), keys.stride(2), self.eps, self.scaling,
                       torch.get_num_threads())
        self.step(self.layers, len(self.layers), ctypes.byref(shape), hidden.data_ptr(), cos.data_ptr(),
                  sin.data_ptr(), mask.data_ptr(), keys.data_ptr(), values.data_ptr(), work.data_ptr())
        return hidden.reshape(rows, 1, width)


def _plain(decoder) -> bool:
    """Every layer fused, without biases, fp32, and a cache laid out position by position."""
    for layer, fused in zip(decoder.model.layers, decoder.fused):
        if fused is None or fused.qkv_bias is not None or fused.qkv.dtype != torch.float32:
            return False
        attention, mlp = layer.self_attn, layer.mlp
        if any(type(module) is not nn.Linear or module.bias is not None for module in (attention.o_proj,
                                                                                        mlp.down_proj)):
            return False
        if mlp.down_proj.weight.dtype != torch.float32 or layer.input_layernorm.weight.dtype != torch.float32:
            return False
    keys = decoder.keys
    return keys.stride(4) == 1 and keys.stride(3) == decoder.head_dim and decoder.values.stride() == keys.stride()
