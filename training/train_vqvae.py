"""Train the VQ-VAE image tokenizer on a scene dataset or a folder of images.

    accelerate launch -m training.train_vqvae --config training/recipes/vq-scenes.yaml --data data/scenes --out runs/vq
    glyph train vqvae --config training/recipes/vq-scenes.yaml --data data/scenes --out runs/vq

Writes into --out:

    config.json model.safetensors     the trained tokenizer (VQModel.from_pretrained(out)), at the end
    checkpoint/                       the latest training state; running the same command again resumes it
    samples/step_000500.png ...       originals above reconstructions, held-out images
    logs/                             TensorBoard
    report.json report.png            held-out PSNR, codebook usage, parser agreement; grid and curves

Kill it at any time: the next run with the same --out continues from the last
checkpoint (Ctrl+C saves one before stopping). A finished run is not trained
again; pass --overwrite to start over.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from assistant.config import VQConfig, write_json_atomic
from assistant.pixels import uint8_to_float
from assistant.vq import VQModel
from training.batches import batch_indices_across_epochs
from training.eval_vq import evaluate_vq, reconstruct
from training.harness import add_run_options, add_schedule_options, start_accelerator, trainer_parser
from training.image_data import ImageSet, load_images, refuse_or_skip
from training.pictures import comparison_grid, loss_curves, save_png_atomic
from training.recipe import parse_with_recipe
from training.run import Run, already_trained, previous_state, trainer_main
from training.schedule import adamw

SAMPLE_IMAGES = 16  # held-out images shown in every sample grid
CURVES = ["loss", "mse", "psnr", "codes_used"]


def build_parser() -> argparse.ArgumentParser:
    p = trainer_parser("vqvae", __doc__.split("\n\n")[0], "a scene dataset (glyph data scenes) or a folder of images",
                       "run directory: model, checkpoint, samples, report",
                       "skip unreadable images (they are counted and listed)")
    model = p.add_argument_group("model (VQConfig)")
    for field, kind in [("image_size", int), ("downsample", int), ("codebook_size", int), ("code_dim", int),
                        ("stem", int), ("encoder_blocks", int), ("decoder_blocks", int), ("groups", int),
                        ("commitment", float)]:
        model.add_argument("--" + field.replace("_", "-"), type=kind, default=getattr(VQConfig, field))
    model.add_argument("--channels", type=_ints, default=VQConfig.channels, help="widths per resolution, e.g. 64,128")
    model.add_argument("--local-tokens", action=argparse.BooleanOptionalAction, default=VQConfig.local_tokens,
                       help="each token encodes and draws only its own downsample² patch, never its neighbours "
                            "(for scenes whose grid cells hold one picture each)")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int, default=3300)
    train.add_argument("--batch-size", type=int, default=8)
    add_schedule_options(train, lr=2e-3, warmup=100, weight_decay=0.0)
    train.add_argument("--kmeans-after", type=int, default=0, metavar="STEPS",
                       help="train STEPS steps as a plain autoencoder, then start the codebook on k-means centres "
                            "of the encoder's outputs and quantise from there on (0: quantise from the start)")
    train.add_argument("--edge-weight", type=float, default=0.0, help="weight of the L1 edge (image gradient) loss; 0 trained best on scenes")
    train.add_argument("--centred-objects", action="store_true",
                       help="train on the scenes with every object centred in its cell: the pictures the assistant "
                            "draws (glyph data chats --drawing-size), for a tokenizer that draws only those")
    train.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                       help="random horizontal flips (scenes stay valid scenes)")
    every = p.add_argument_group("outputs")
    add_run_options(train, every, log_every=20, save_every=250)
    every.add_argument("--sample-every", type=int, default=500)
    every.add_argument("--eval-images", type=int, default=1000, help="held-out images in the final report")
    return p


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in str(text).split(","))


def vq_config(args: argparse.Namespace) -> VQConfig:
    # A recipe may give channels as a list; argparse has already turned a "64,128" string into a tuple.
    return VQConfig(image_size=args.image_size, downsample=args.downsample, codebook_size=args.codebook_size,
                    code_dim=args.code_dim, channels=tuple(int(c) for c in args.channels), stem=args.stem, encoder_blocks=args.encoder_blocks,
                    decoder_blocks=args.decoder_blocks, groups=args.groups, commitment=args.commitment,
                    local_tokens=args.local_tokens).validate()


def training_batch(images: ImageSet, step: int, args: argparse.Namespace, device: torch.device) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1], randomly flipped as fixed by (seed, step)."""
    pixels = uint8_to_float(images.pixels[batch_indices_across_epochs(step, args.batch_size, len(images), args.seed)])
    if args.flip:
        flips = torch.rand(len(pixels), generator=torch.Generator().manual_seed(args.seed + 7 * step)) < 0.5
        pixels[flips] = pixels[flips].flip(-1)
    return pixels.to(device).contiguous(memory_format=torch.channels_last)


def load_data(args: argparse.Namespace, size: int) -> tuple[ImageSet, ImageSet]:
    centred = args.centred_objects
    train = load_images(args.data, "train", size, centred_objects=centred)
    held_out = load_images(args.data, "validation", size, limit=args.eval_images, centred_objects=centred)
    refuse_or_skip(train.skipped + held_out.skipped, args.skip_bad)
    return train, held_out


def main(argv: list[str] | None = None) -> int:
    return trainer_main("vqvae", lambda: prepare(argv), train_loop)


def prepare(argv: list[str] | None) -> tuple | None:
    """(args, config, training images, held-out images); None when --out is already trained."""
    args = parse_with_recipe(build_parser(), argv)
    config = vq_config(args)
    state = previous_state(args, fits=lambda saved: VQConfig.from_dict(saved["config"]) == config)
    if already_trained(state, args.out):
        return None
    return (args, config, *load_data(args, config.image_size))


def train_loop(args: argparse.Namespace, config: VQConfig, train: ImageSet, held_out: ImageSet) -> int:
    accelerator, precision = start_accelerator(args.precision, args.out)
    torch.manual_seed(args.seed)
    model = VQModel(config).to(memory_format=torch.channels_last)
    optimizer = adamw(model, args.lr, args.weight_decay, betas=(0.9, 0.99))
    run = Run.resume(args, "vqvae", accelerator, model, optimizer, args.warmup, args.steps,
                     fresh={"config": config.to_dict()})
    torch.manual_seed(args.seed + run.step)  # dead-code restarts draw from here
    model, optimizer = run.prepare(model, optimizer)
    samples = held_out.pixels[:SAMPLE_IMAGES]
    print(f"training on {len(train)} images ({config.tokens_per_image} tokens each, {config.codebook_size} codes), "
          f"precision {'bf16' if precision == 'bf16' else 'fp32'}, {args.steps} steps of {args.batch_size}")

    with run.interruptible():
        for step in run.steps():
            model.train()
            pixels = training_batch(train, step, args, accelerator.device)
            if args.kmeans_after and step == args.kmeans_after:
                start_codebook_on_kmeans(run.inner_model, train, args, accelerator)
            with accelerator.autocast():
                out = model(pixels, quantise=step >= args.kmeans_after)
            losses = out.losses
            loss = losses.reconstruction + args.edge_weight * losses.edge + losses.codebook + losses.commitment
            accelerator.backward(loss)
            run.optimizer_step()
            if run.log_due():
                row = log_row(run.step, loss, out, pixels, run.inner_model, run.lr())
                run.log(row, loss=f"{row['loss']:.4f}", psnr=f"{row['psnr']:.1f}", codes=f"{row['codes_used']:.0%}",
                        img_s=f"{run.per_second(args.batch_size):.0f}")
            if run.step % args.sample_every == 0:
                write_samples(run.inner_model, samples, args.out / "samples" / f"step_{run.step:06d}.png")
            run.end_step()
    return run.finish(lambda: finish(args, run.inner_model, run.state, held_out))


KMEANS_IMAGES = 2000  # training images whose token latents k-means clusters: 18,000 for a 3×3 grid


def start_codebook_on_kmeans(model: VQModel, train: ImageSet, args: argparse.Namespace, accelerator) -> None:
    """The warmed-up encoder's latents of KMEANS_IMAGES training images, clustered into the codebook."""
    picks = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:KMEANS_IMAGES]
    model.eval()
    with accelerator.autocast():
        latents = torch.cat([model.latents(uint8_to_float(train.pixels[picks[i:i + 256]]).to(accelerator.device))
                             for i in range(0, len(picks), 256)])
    model.quantizer.fit_kmeans(latents, generator=torch.Generator().manual_seed(args.seed))
    model.train()
    print(f"step {args.kmeans_after}: codebook started on k-means centres of {len(latents)} token latents")


def log_row(step: int, loss: torch.Tensor, out, pixels: torch.Tensor, model: VQModel, lr: float) -> dict:
    mse = float((out.reconstruction.detach().float().clamp(-1, 1) - pixels).pow(2).mean())
    return {"step": step, "loss": float(loss.detach()), "mse": float(out.losses.reconstruction.detach()),
            "edge": float(out.losses.edge.detach()), "commitment": float(out.losses.commitment.detach()),
            "psnr": 10 * math.log10(4.0 / max(mse, 1e-10)),  # the pixel range [-1, 1] spans 2
            "codes_used": model.quantizer.used_fraction(),
            "restarts": model.quantizer.restarts, "lr": lr}


def write_samples(model: VQModel, originals: torch.Tensor, path: Path) -> None:
    _, reconstructions = reconstruct(model, originals)
    save_png_atomic(comparison_grid(originals, reconstructions), path)


def finish(args: argparse.Namespace, vq: VQModel, state: dict, held_out: ImageSet) -> None:
    """The trained model at --out, its held-out report and pictures."""
    vq.save_pretrained(args.out)
    metrics = evaluate_vq(vq, held_out)
    report = {"train_seconds": round(state["seconds"], 1), "steps": state["step"], "batch_size": args.batch_size,
              "held_out": metrics, "config": vq.config.to_dict()}
    write_json_atomic(args.out / "report.json", report)
    write_samples(vq, held_out.pixels[:SAMPLE_IMAGES], args.out / "report.png")
    loss_curves(state["history"], CURVES, args.out / "curves.png", f"VQ-VAE training ({args.out.name})",
                log_keys=("loss", "mse"))
    print(" ".join(f"{k}={v}" for k, v in metrics.items()))
    print(f"wrote {args.out} (look at {args.out / 'report.png'} and {args.out / 'curves.png'})")


if __name__ == "__main__":
    sys.exit(main())
