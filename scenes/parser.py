"""Read a scene back from pixels: the referee for every later quality number.

    from scenes.parser import read_scene
    reading = read_scene(image)          # PIL image or (H, W, 3) uint8 array
    reading.matches(scene)               # True when every object is read exactly

How it reads:
1. The background colour is the median of the border pixels; pixels far from
   it are foreground, grouped into 4-connected blobs.
2. A blob's colour is the palette colour whose line from the background best
   explains the blob's core pixels; blur and JPEG only slide a pixel along
   that line (partial coverage), so the fit tolerates them.
3. Knowing the colour, each pixel's coverage ("alpha") is its position on the
   line. The alpha > 0.5 region gives the box; size and grid cell follow.
4. The shape is the template, drawn by the renderer itself in that box, with
   the highest soft IoU against the alpha map.
Anything that fits no colour, no shape, or no size well enough, or fits two
equally, is reported in `unknown` with the reason, never guessed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from scenes.render import shape_coverage
from scenes.world import COLORS, GRID, SHAPES, SIZE_FRACTION, Scene

FOREGROUND_DISTANCE = 40.0  # RGB distance from the background that marks a foreground pixel
SEED_DISTANCE = 100.0  # ... and that marks a blob's core
SEED_REACH = 3.0  # pixels: how far a blob extends beyond its core
MIN_BLOB_CELL_FRACTION = 0.15  # blobs smaller than (this × cell side)² are noise, not objects
COLOR_TOLERANCE = 70.0  # largest RGB residual from a palette colour's line still accepted
COLOR_MARGIN = 10.0  # the runner-up colour must fit this much worse, or the colour is ambiguous
SHAPE_MIN_IOU = 0.6  # a shape template must overlap the blob at least this well
SHAPE_MARGIN = 0.04  # ... and beat the runner-up shape by this much
# Templates are also compared blurred, so a blurred or compressed image is
# matched against the shape as it would look after the same softening.
TEMPLATE_BLURS = (0.0, 0.6, 1.0, 1.4)
CHROMA_WEIGHT = 0.25  # weight of chroma against luma when measuring coverage
SIZE_THRESHOLD = (SIZE_FRACTION["small"] + SIZE_FRACTION["large"]) / 2  # in cell sides
SIZE_RANGE = (0.3, 0.95)  # plausible object sides, in cell sides


@dataclass(frozen=True)
class ReadObject:
    shape: str
    color: str
    size: str
    row: int
    col: int
    box: tuple[float, float, float, float]  # normalised [x1, y1, x2, y2]
    shape_iou: float

    def key(self) -> tuple[str, str, str, int, int]:
        return (self.shape, self.color, self.size, self.row, self.col)


@dataclass(frozen=True)
class UnknownBlob:
    box: tuple[float, float, float, float]  # normalised [x1, y1, x2, y2]
    reason: str


@dataclass
class SceneReading:
    objects: list[ReadObject] = field(default_factory=list)
    unknown: list[UnknownBlob] = field(default_factory=list)

    def keys(self) -> list[tuple]:
        return sorted(o.key() for o in self.objects)

    def matches(self, scene: Scene) -> bool:
        """Exactly the scene's objects (shape, colour, size, cell) and nothing unexplained."""
        return not self.unknown and self.keys() == scene.keys()


def read_scene(image) -> SceneReading:
    pixels = _as_rgb_array(image)  # (H, W, 3) float32
    size = pixels.shape[0]
    background = np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0)
    offset = pixels - background  # (H, W, 3)
    labels = _blobs(np.linalg.norm(offset, axis=-1))
    cell = size / GRID
    reading = SceneReading()
    for index in range(1, labels.max() + 1):
        blob = labels == index  # (H, W) bool
        if blob.sum() < (MIN_BLOB_CELL_FRACTION * cell) ** 2:
            continue
        result = _read_blob(offset, blob, labels, background, size)
        if isinstance(result, ReadObject):
            reading.objects.append(result)
        else:
            reading.unknown.append(result)
    return reading


def _blobs(distance: np.ndarray) -> np.ndarray:
    """Label foreground blobs: (H, W) int, 0 = background.

    Strong pixels seed the blobs; each weaker foreground pixel joins the
    nearest seed. Blur can bridge two close objects with weak pixels, and
    this keeps them apart. Weak regions with no seed nearby become blobs of
    their own, so faint marks are still reported.
    """
    seeds, count = ndimage.label(distance > SEED_DISTANCE)
    gap, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    weak = distance > FOREGROUND_DISTANCE
    labels = np.where(weak & (gap <= SEED_REACH), seeds[iy, ix], 0)
    faint, _ = ndimage.label(weak & (labels == 0))
    return np.where(faint > 0, faint + count, labels)


def _read_blob(offset: np.ndarray, blob: np.ndarray, labels: np.ndarray, background: np.ndarray,
               size: int) -> ReadObject | UnknownBlob:
    color, why = _blob_color(offset[blob], background)
    if color is None:
        return UnknownBlob(_normalised(_bbox(blob), size), why)
    alpha = _coverage(offset, COLORS[color], background)
    alpha[(labels != 0) & ~blob] = 0  # neighbours are not part of this object
    alpha *= ndimage.binary_dilation(blob, iterations=2)
    shape, box, iou, why = _best_shape(alpha, size)
    if shape is None:
        return UnknownBlob(_normalised(_bbox(blob), size), why)
    cell = size / GRID
    side = (box[2] - box[0]) / cell
    if not SIZE_RANGE[0] <= side <= SIZE_RANGE[1]:
        return UnknownBlob(_normalised(box, size), f"{color} {shape} of {side:.2f} cell sides fits no size")
    row, col = (int((box[1] + box[3]) / 2 // cell), int((box[0] + box[2]) / 2 // cell))
    return ReadObject(shape, color, "small" if side < SIZE_THRESHOLD else "large",
                      min(row, GRID - 1), min(col, GRID - 1), _normalised(box, size), iou)


def _blob_color(blob_offsets: np.ndarray, background: np.ndarray) -> tuple[str | None, str]:
    """The palette colour whose direction from the background best fits the blob.

    It fits the blob's summed offset from the background: blur and JPEG's
    chroma subsampling move colour between neighbouring pixels but keep its
    sum, so thin shapes keep their true colour. The residual is in RGB units
    of one fully covered pixel.
    """
    total = blob_offsets.sum(axis=0)  # (3,)
    residuals = {}
    for name, rgb in COLORS.items():
        direction = np.asarray(rgb, np.float32) - background
        coverage = total @ direction / (direction @ direction)  # pixels' worth of this colour
        if coverage > 0:
            residuals[name] = float(np.linalg.norm(total / coverage - direction))
    ranked = sorted(residuals, key=residuals.get)
    if not ranked or residuals[ranked[0]] > COLOR_TOLERANCE:
        mean = background + total / max(len(blob_offsets), 1)
        return None, f"color near {tuple(int(v) for v in mean)} is not in the palette"
    if len(ranked) > 1 and residuals[ranked[1]] - residuals[ranked[0]] < COLOR_MARGIN:
        return None, f"color is ambiguous between {ranked[0]} and {ranked[1]}"
    return ranked[0], ""


def _coverage(offset: np.ndarray, rgb, background: np.ndarray) -> np.ndarray:
    """Per-pixel fraction of `rgb` over the background: (H, W) in [0, 1].

    The projection weighs luma above chroma (metric `_LUMA_WEIGHTED`): JPEG
    keeps luma at full resolution but halves chroma, so luma carries the
    sharper outline. For pure mixing (antialiasing, blur) any metric gives
    the same answer.
    """
    direction = np.asarray(rgb, np.float32) - background
    weighted = _LUMA_WEIGHTED @ direction
    return np.clip(offset @ weighted / (direction @ weighted), 0.0, 1.0)


_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.1687, -0.3313, 0.5], [0.5, -0.4187, -0.0813]])
_LUMA_WEIGHTED = (_YCBCR.T @ np.diag([1.0, CHROMA_WEIGHT, CHROMA_WEIGHT]) @ _YCBCR).astype(np.float32)


def _best_shape(alpha: np.ndarray, size: int) -> tuple[str | None, tuple, float, str]:
    """The shape template that best explains the coverage map, and its box.

    Each candidate's box comes from the blob's moments: its side from the
    covered area and the shape's fill fraction, its centre from the centroid.
    Blur keeps both moments, so the fit holds on blurred images too.
    """
    mass = float(alpha.sum())
    ys, xs = np.indices(alpha.shape)
    centroid = np.array([(xs * alpha).sum(), (ys * alpha).sum()]) / mass + 0.5  # pixel centres
    window = _window(alpha > 0, margin=4)  # compare near the blob only: much faster blurs
    ious, boxes = {}, {}
    for shape in SHAPES:
        fill, offset = _shape_moments(shape)
        side = (mass / fill) ** 0.5
        cx, cy = centroid - np.asarray(offset) * side
        boxes[shape] = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        template = shape_coverage(shape, boxes[shape], size)[window]
        ious[shape] = max(_soft_iou(alpha[window], ndimage.gaussian_filter(template, sigma) if sigma else template)
                          for sigma in TEMPLATE_BLURS)
    ranked = sorted(ious, key=ious.get, reverse=True)
    best, second = ranked[0], ranked[1]
    if ious[best] < SHAPE_MIN_IOU:
        return None, (), ious[best], f"no shape fits (best {best}, IoU {ious[best]:.2f})"
    if ious[best] - ious[second] < SHAPE_MARGIN:
        return None, (), ious[best], f"shape is ambiguous between {best} and {second}"
    return best, boxes[best], ious[best], ""


def _window(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The mask's bounding slices, grown by `margin` pixels and clipped to the image."""
    x1, y1, x2, y2 = _bbox(mask)
    height, width = mask.shape
    return slice(max(y1 - margin, 0), min(y2 + margin, height)), slice(max(x1 - margin, 0), min(x2 + margin, width))


def _soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


@functools.lru_cache(maxsize=None)
def _shape_moments(shape: str) -> tuple[float, tuple[float, float]]:
    """(fraction of its box the shape fills, its centroid's offset from the box centre in sides)."""
    size, lo, hi = 256, 28, 228
    coverage = shape_coverage(shape, (lo, lo, hi, hi), size).astype(np.float64)
    ys, xs = np.indices(coverage.shape)
    mass = coverage.sum()
    centre = (lo + hi) / 2
    cx, cy = (xs * coverage).sum() / mass + 0.5, (ys * coverage).sum() / mass + 0.5
    return mass / (hi - lo) ** 2, ((cx - centre) / (hi - lo), (cy - centre) / (hi - lo))


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """[x1, y1, x2, y2) pixel box of a boolean mask, or None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _normalised(box, size: int) -> tuple[float, float, float, float]:
    return tuple(round(v / size, 4) for v in box)


def _as_rgb_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] != array.shape[1]:
        raise ValueError(f"read_scene needs a square RGB image, got an array of shape {array.shape}")
    return array
