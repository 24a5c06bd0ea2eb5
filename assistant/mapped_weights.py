"""A safetensors file's tensors as views of one memory-mapped storage.

    state = mapped_tensors(Path("model.safetensors"))   # {name: tensor}, nothing read until used

safetensors' own `load_file` maps the file too, but gives every tensor a storage of its own. Here they all share
the file's one storage, so tensors that lie back to back in the file (a layer's gate and up projections do:
safetensors orders them by name) can be stacked into one matrix without a copy (decoder.fuse_projections).
The mapping is private: writing to a tensor never changes the file.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
from torch import Tensor

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


class UnreadableWeights(ValueError):
    """A file that is not a whole safetensors file of known dtypes; the message names it."""


def mapped_tensors(path: Path) -> dict[str, Tensor]:
    """Every tensor of the safetensors file at `path`, each a view of the file mapped into memory."""
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise UnreadableWeights(f"{path} is too short to be a safetensors file")
        (header_length,) = struct.unpack("<Q", prefix)
        if 8 + header_length > size:
            raise UnreadableWeights(f"{path} is cut short: its header runs past the end of the file")
        try:
            header = json.loads(file.read(header_length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnreadableWeights(f"{path} has an unreadable header ({error})") from None
    header.pop("__metadata__", None)
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    return {name: _view(storage, 8 + header_length, name, entry, path) for name, entry in header.items()}


def _view(storage: torch.UntypedStorage, data_start: int, name: str, entry: dict, path: Path) -> Tensor:
    dtype = DTYPES.get(entry.get("dtype"))
    begin, end = (data_start + offset for offset in entry["data_offsets"])
    shape = entry["shape"]
    itemsize = dtype.itemsize if dtype is not None else 1
    if dtype is None or end > storage.nbytes() or end - begin != math.prod(shape) * itemsize or begin % itemsize:
        raise UnreadableWeights(f"{path}: tensor {name} has an unknown dtype, is cut short or is misaligned")
    return torch.empty(0, dtype=dtype).set_(storage, begin // itemsize, shape)
