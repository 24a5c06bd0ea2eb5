"""Image degradations the scene parser must survive: blur and JPEG compression."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def gaussian_blur(image: Image.Image, sigma: float = 1.0) -> Image.Image:
    """A true Gaussian blur of `sigma` pixels (Pillow's GaussianBlur only approximates one)."""
    pixels = ndimage.gaussian_filter(np.asarray(image.convert("RGB"), np.float32), sigma=(sigma, sigma, 0))
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 50) -> Image.Image:
    """The image after a JPEG round trip at `quality` (Pillow's default 4:2:0 chroma subsampling)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(buffer).convert("RGB")


DEGRADATIONS = {
    "clean": lambda image: image,
    "blur-sigma-1": gaussian_blur,
    "jpeg-q50": jpeg,
}
