"""What a frozen CLIP's patch features hold about scenes: linear probes for colour, shape and place.

    glyph eval clip --model runs/clip --data data/scenes [--train 3000 --test 400 --feature-layer -2]

The assistant can only say what its projector can read off these features, so this measures the vision
tower the way the projector sees it (the same patch tokens of the same block):
- colour and shape of the object in each occupied grid cell, from the patch at the cell's centre and from
  the 3×3 patches around it, by a linear probe; and from the centre patch by a probe with one hidden layer,
  which is what the assistant's MLP projector can read;
- which patch a feature comes from (the place), and which grid cell.
Each probe is a logistic regression trained on --train scenes of the training split and scored on --test
scenes of the test split. Writes probes.json into --model and prints the accuracies.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from assistant.config import ConfigError, VisionConfig, write_json_atomic
from scenes.world import COLORS, SHAPES
from training.eval_assistant import SceneItem, load_scenes

GRID = 3  # scenes put at most one object in each cell of a 3×3 grid
MLP_HIDDEN = 256  # the hidden width of the one-hidden-layer probes


@torch.no_grad()
def patch_features(tower, items: list[SceneItem], batch_size: int = 128) -> torch.Tensor:
    """(N, P, D) patch features of the tower's feature block for each scene image."""
    chunks = []
    for start in tqdm(range(0, len(items), batch_size), desc="features", unit="batch", leave=False):
        pixels = torch.stack([tower.preprocess(Image.open(item.image).convert("RGB"))
                              for item in items[start:start + batch_size]])
        chunks.append(tower(pixels).float())
    return torch.cat(chunks)


def cell_labels(items: list[SceneItem], attribute: str) -> torch.Tensor:
    """(N, 9): 1 + the index of the cell's object's colour or shape, 0 for an empty cell."""
    names = list(COLORS) if attribute == "color" else list(SHAPES)
    labels = torch.zeros(len(items), GRID * GRID, dtype=torch.long)
    for n, item in enumerate(items):
        for obj in item.scene.objects:
            labels[n, obj.row * GRID + obj.col] = 1 + names.index(getattr(obj, attribute))
    return labels


def cell_patches(side: int, radius: int) -> list[list[int]]:
    """For each grid cell, the patch indices of the (2·radius+1)² patches around its centre, clipped to the image."""
    def clip(i: int) -> int:
        return min(max(i, 0), side - 1)

    cells = []
    for row in range(GRID):
        for col in range(GRID):
            r, c = int((row + 0.5) * side / GRID), int((col + 0.5) * side / GRID)
            cells.append([clip(r + dr) * side + clip(c + dc) for dr in range(-radius, radius + 1)
                          for dc in range(-radius, radius + 1)])
    return cells


def linear_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                 epochs: int = 300, seed: int = 0, hidden: int = 0) -> float:
    """Test accuracy of a logistic regression (full-batch Adam on standardised features).

    With `hidden` > 0 the probe has one GELU hidden layer of that width: what an MLP projector can read.
    """
    torch.manual_seed(seed)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-5
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    classes = int(max(y_train.max(), y_test.max())) + 1
    if hidden:
        probe = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], hidden), torch.nn.GELU(),
                                    torch.nn.Linear(hidden, classes))
    else:
        probe = torch.nn.Linear(x_train.shape[1], classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=3e-3 if hidden else 1e-2, weight_decay=1e-4)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(probe(x_train), y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return round(float((probe(x_test).argmax(-1) == y_test).float().mean()), 4)


def object_probe(train: tuple[torch.Tensor, list[SceneItem]], test: tuple[torch.Tensor, list[SceneItem]],
                 attribute: str, radius: int, hidden: int = 0) -> float:
    """Accuracy at naming the colour or shape of each occupied cell's object from the patches around it."""
    side = int(train[0].shape[1] ** 0.5)
    cells = cell_patches(side, radius)

    def rows(features: torch.Tensor, items: list[SceneItem]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([features[:, patches].flatten(1) for patches in cells], 1).flatten(0, 1)
        y = cell_labels(items, attribute).flatten()
        return x[y > 0], y[y > 0]

    return linear_probe(*rows(*train), *rows(*test), epochs=400 if hidden else 300, hidden=hidden)


def place_probes(train: torch.Tensor, test: torch.Tensor, limit: int = 400) -> dict[str, float]:
    """Accuracy at telling which patch, and which grid cell, a single patch feature comes from."""
    train, test = train[:limit], test[:limit]
    patches, side = train.shape[1], int(train.shape[1] ** 0.5)
    cell_of = torch.tensor([(p // side) * GRID // side * GRID + (p % side) * GRID // side for p in range(patches)])
    x_train, x_test = train.flatten(0, 1), test.flatten(0, 1)
    index_train, index_test = torch.arange(patches).repeat(len(train)), torch.arange(patches).repeat(len(test))
    return {"patch_index": linear_probe(x_train, index_train, x_test, index_test, epochs=200),
            "grid_cell": linear_probe(x_train, cell_of[index_train], x_test, cell_of[index_test], epochs=200)}


def probe_all(tower, train_items: list[SceneItem], test_items: list[SceneItem]) -> dict:
    train = (patch_features(tower, train_items), train_items)
    test = (patch_features(tower, test_items), test_items)
    report = {f"{attribute}_{where}": object_probe(train, test, attribute, radius)
              for attribute in ("color", "shape") for where, radius in (("centre_patch", 0), ("3x3_patches", 1))}
    # What the assistant's MLP projector can read from the one patch at a cell's centre (one hidden layer).
    report.update({f"{attribute}_centre_patch_mlp": object_probe(train, test, attribute, 0, hidden=MLP_HIDDEN)
                   for attribute in ("color", "shape")})
    report.update(place_probes(train[0], test[0]))
    return {**report, "train_scenes": len(train_items), "test_scenes": len(test_items),
            "feature_layer": tower.config.feature_layer}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph eval clip", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="an open_clip folder (glyph train clip --out)")
    p.add_argument("--data", required=True, type=Path, help="the scene dataset")
    p.add_argument("--train", type=int, default=3000, help="training-split scenes the probes learn from")
    p.add_argument("--test", type=int, default=400, help="test-split scenes the probes are scored on")
    p.add_argument("--feature-layer", type=int, default=-2, help="the block whose patch tokens are probed")
    args = p.parse_args(argv)
    try:
        from assistant.vision import VisionTower

        tower = VisionTower(VisionConfig(f"local-dir:{args.model}", None, feature_layer=args.feature_layer))
        train_items = load_scenes(args.data, "train", args.train)
        test_items = load_scenes(args.data, "test", args.test)
    except (ConfigError, OSError, ValueError) as error:
        print(f"glyph eval clip: {error}", file=sys.stderr)
        return 2
    if not train_items or not test_items:
        print(f"glyph eval clip: {args.data} has no train or no test scenes; make a dataset with "
              "`glyph data scenes --out DIR`", file=sys.stderr)
        return 2
    report = probe_all(tower, train_items, test_items)
    write_json_atomic(args.model / "probes.json", report)
    print("linear probes on the patch features: " + "  ".join(
        f"{k} {v:.1%}" for k, v in report.items() if isinstance(v, float)) + f"; wrote {args.model / 'probes.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
