"""Pictures that training writes for people to look at: image grids and loss curves (PNG)."""
from __future__ import annotations

from pathlib import Path

import torch
from boltons.fileutils import atomic_save
from PIL import Image
from torchvision.utils import make_grid


def comparison_grid(originals: torch.Tensor, reconstructions: torch.Tensor, columns: int = 8,
                    scale: int = 3) -> Image.Image:
    """Pairs of rows, originals above their reconstructions; (N, 3, H, W) uint8 each.

    Enlarged with nearest-neighbour so single-pixel errors stay visible.
    """
    rows = []
    for start in range(0, len(originals), columns):
        rows += [originals[start:start + columns], reconstructions[start:start + columns]]
    tiles = torch.cat([_pad_to(r, columns) for r in rows])
    grid = make_grid(tiles, nrow=columns, padding=2, pad_value=255)  # (3, H', W') uint8
    image = Image.fromarray(grid.permute(1, 2, 0).numpy())
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def _pad_to(batch: torch.Tensor, count: int) -> torch.Tensor:
    missing = count - len(batch)
    return torch.cat([batch, torch.full((missing, *batch.shape[1:]), 255, dtype=batch.dtype)]) if missing else batch


def loss_curves(history: list[dict], keys: list[str], path: Path, title: str,
                log_keys: tuple[str, ...] = ("loss",)) -> Path:
    """One panel per key, against 'step'; keys in `log_keys` on a log scale."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    steps = [row["step"] for row in history]
    for axis, key in zip(axes[0], keys):
        values = [row[key] for row in history]
        axis.plot(steps, values, linewidth=1.2)
        if key in log_keys and values and min(values) > 0:
            axis.set_yscale("log")
        axis.set_title(key)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    save_png_atomic(figure, path)
    plt.close(figure)
    return path


def save_png_atomic(picture, path: Path) -> Path:
    """Save a PIL image or a matplotlib figure so that a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_save(str(path)) as file:
        if isinstance(picture, Image.Image):
            picture.save(file, format="PNG")
        else:
            picture.savefig(file, format="png", dpi=100)
    return path
