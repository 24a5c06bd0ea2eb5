"""Images ↔ tensors in the layout the models take: (B, 3, H, W) float in [-1, 1].

    batch = to_tensor([Image.open(p) for p in paths], size=64)
    images = to_pil(model.decode(ids))

Any mode is converted to RGB; a non-square image is centre-cropped to a
square, and a square of another size is resized with a Lanczos filter, so
every model input has the size the model was trained on.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def square_rgb(image: Image.Image, size: int) -> Image.Image:
    """`image` as an RGB square of `size` px: converted, centre-cropped and resized as needed."""
    image = image.convert("RGB")
    if image.width != image.height:
        side = min(image.width, image.height)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.width != size:
        image = image.resize((size, size), Image.LANCZOS)
    return image


def to_uint8(image: Image.Image, size: int) -> np.ndarray:
    """(3, size, size) uint8."""
    return np.asarray(square_rgb(image, size), dtype=np.uint8).transpose(2, 0, 1).copy()


def uint8_to_float(pixels: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) uint8 → float in [-1, 1]."""
    return pixels.float().div(127.5).sub(1.0)


def float_to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) float in [-1, 1] → uint8, rounded the way a saved PNG would be."""
    return pixels.detach().float().clamp(-1, 1).add(1.0).mul(127.5).round().to(torch.uint8)


def to_tensor(images: list[Image.Image], size: int) -> torch.Tensor:
    """PIL images → (B, 3, size, size) float in [-1, 1]."""
    return uint8_to_float(torch.from_numpy(np.stack([to_uint8(image, size) for image in images])))


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) float in [-1, 1] → PIL RGB images."""
    array = float_to_uint8(pixels).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in array]
