"""Measure a VQ-VAE on held-out images: PSNR, codebook usage and, on scenes, parser agreement.

    glyph eval vq --model runs/vq --data data/scenes [--split validation] [--limit 1000]

- PSNR: mean over images of 10·log10(255² / MSE), on the reconstruction as a
  saved PNG would hold it (uint8).
- Codebook usage: the fraction of codes that encoding the images uses at least once.
- Parser agreement (scene datasets): the fraction of reconstructions that the
  scene parser reads exactly as it reads the original, with nothing unexplained.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from assistant.config import ConfigError
from assistant.pixels import float_to_uint8, uint8_to_float
from assistant.vq import VQModel
from scenes.parser import read_scene
from training.image_data import ImageDataError, ImageSet, load_images


@torch.no_grad()
def reconstruct(model: VQModel, pixels: torch.Tensor, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) uint8 → (ids (N, h, w), reconstructions (N, 3, H, W) uint8)."""
    model.eval()
    device = next(model.parameters()).device
    all_ids, all_images = [], []
    for start in range(0, len(pixels), batch_size):
        batch = uint8_to_float(pixels[start:start + batch_size].to(device))
        ids = model.encode(batch)
        all_ids.append(ids.cpu())
        all_images.append(float_to_uint8(model.decode(ids)).cpu())
    return torch.cat(all_ids), torch.cat(all_images)


def psnr(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of uint8 images, (N,)."""
    mse = (originals.float() - reconstructions.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))


def parser_agreement(originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """Per image: does the parser read the reconstruction exactly as the original? (N,) bool."""
    agree = []
    pairs = zip(originals.permute(0, 2, 3, 1).numpy(), reconstructions.permute(0, 2, 3, 1).numpy())
    for original, reconstruction in tqdm(pairs, total=len(originals), desc="parsing", unit="img", leave=False):
        reading = read_scene(reconstruction)
        agree.append(not reading.unknown and reading.keys() == read_scene(original).keys())
    return torch.tensor(agree)


def evaluate_vq(model: VQModel, images: ImageSet) -> dict:
    start = time.perf_counter()
    ids, reconstructions = reconstruct(model, images.pixels)
    scores = psnr(images.pixels, reconstructions)
    metrics = {
        "images": len(images),
        "psnr_db": round(float(scores.mean()), 3),
        "psnr_db_worst": round(float(scores.min()), 3),
        "codebook_usage": round(ids.unique().numel() / model.config.codebook_size, 4),
        "tokens_per_image": model.config.tokens_per_image,
        "codebook_size": model.config.codebook_size,
    }
    if images.scenes is not None:
        metrics["parser_agreement"] = round(float(parser_agreement(images.pixels, reconstructions).float().mean()), 4)
    metrics["eval_seconds"] = round(time.perf_counter() - start, 1)
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glyph eval vq", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a directory written by VQModel.save_pretrained")
    parser.add_argument("--data", required=True, help="a scene dataset or a folder of images")
    parser.add_argument("--split", default="validation", help="validation (default) or test; train for folders")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--centred-objects", action="store_true",
                        help="scenes with every object centred in its cell, as the assistant draws them (for a VQ "
                             "trained with --centred-objects)")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = VQModel.from_pretrained(args.model)
        images = load_images(args.data, args.split, model.config.image_size, args.limit, args.centred_objects)
    except (ConfigError, ImageDataError) as error:
        print(f"glyph eval vq: {error}", file=sys.stderr)
        return 2
    if images.skipped:
        print(f"skipped {len(images.skipped)} unreadable file(s), e.g. {images.skipped[0][0]}", file=sys.stderr)
    metrics = evaluate_vq(model, images)
    for key, value in metrics.items():
        print(f"{key:<18} {value}")
    if args.json:
        args.json.write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
