"""Train a small CLIP from scratch on scene image–caption pairs: the vision tower of the embedded scene world.

    accelerate launch -m training.train_clip --config training/recipes/clip-scenes.yaml --data data/scenes --out runs/clip
    glyph train clip --config training/recipes/clip-scenes.yaml --data data/scenes --out runs/clip

The model is open_clip's own `CLIP` class built from a model config dict, its
text side uses open_clip's default (bundled, offline) tokenizer, and it trains
with open_clip's `ClipLoss` and learnable logit scale. It is saved in open_clip's
hub layout, so from then on nothing can tell it from a downloaded model:

    VisionTower(VisionConfig("local-dir:runs/clip", None))          # (B, 64, width) patch features
    open_clip.create_model_and_transforms("local-dir:runs/clip")    # the whole CLIP, strict load
    open_clip.get_tokenizer("local-dir:runs/clip")

Writes into --out:

    open_clip_config.json open_clip_model.safetensors   the trained CLIP, at the end
    checkpoint/                  the latest training state; running the same command again resumes it
    logs/                        TensorBoard
    report.json                  held-out retrieval top-1/top-5 both ways, parameter counts, timing
    curves.png held_out.png      training curves; held-out retrieval during training
    retrieval.png                held-out scenes, each with the caption it retrieves

Images are never flipped (captions say left and right); the only augmentation
is an optional small shift (--shift). Kill it at any time: the next run with
the same --out continues from the last checkpoint (Ctrl+C saves one before
stopping). A finished run is not trained again; pass --overwrite to start over.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from boltons.fileutils import atomic_save
from open_clip.push_to_hf_hub import save_config_for_hf
from safetensors.torch import save as safetensors_bytes

from assistant.config import ConfigError, write_json_atomic
from training.batches import batch_indices
from training.harness import add_run_options, add_schedule_options, start_accelerator, trainer_parser
from training.image_data import ImageDataError, is_scene_dataset, load_images, refuse_or_skip
from training.pictures import loss_curves, save_png_atomic
from training.recipe import parse_with_recipe
from training.run import Run, already_trained, per_process, previous_state, trainer_main
from training.schedule import adamw

CONFIG_FILE = "open_clip_config.json"  # the names open_clip's hub and local-dir loaders look for
WEIGHTS_FILE = "open_clip_model.safetensors"
IMAGE_MEAN, IMAGE_STD = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
SHEET_SCENES = 8  # held-out scenes shown in retrieval.png
CURVES = ["loss", "batch_acc", "logit_scale", "lr"]
RETRIEVAL_CURVES = ["i2t_top1", "t2i_top1", "i2t_top5", "t2i_top5"]
MODEL_OPTIONS = [  # (option, type, default, help): the sizes clip_config builds open_clip's model config from
    ("--embed-dim", int, 128, "width of the shared image-text embedding"),
    ("--image-size", int, 64, None),
    ("--patch-size", int, 8, "(image-size / patch-size)² patch tokens"),
    ("--vision-width", int, 128, "the patch feature width the projector sees"),
    ("--vision-layers", int, 4, None),
    ("--vision-head-width", int, 32, "heads = vision-width / this"),
    ("--text-width", int, 128, None),
    ("--text-layers", int, 3, None),
    ("--text-heads", int, 4, None),
    ("--context-length", int, 64, "text tokens; longer captions are cut"),
    ("--mlp-ratio", float, 4.0, "MLP width / model width, both towers"),
]


def build_parser() -> argparse.ArgumentParser:
    p = trainer_parser("clip", __doc__.split("\n\n")[0], "a scene dataset (glyph data scenes): images with captions",
                       "run directory: model, checkpoint, report",
                       "skip unreadable images (they are counted and listed)")
    model = p.add_argument_group("model (open_clip model config)")
    for option, kind, default, text in MODEL_OPTIONS:
        model.add_argument(option, type=kind, default=default, help=text)
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int, default=160)
    train.add_argument("--batch-size", type=int, default=64, help="pairs per step; every other pair is a negative")
    add_schedule_options(train, lr=1e-3, warmup=10, weight_decay=0.1, decay_help="on matrices only, as open_clip does")
    train.add_argument("--shift", type=int, default=0,
                       help="random shifts of up to this many pixels (never flips: captions say left/right)")
    every = p.add_argument_group("outputs")
    add_run_options(train, every, log_every=5, save_every=40)
    every.add_argument("--eval-every", type=int, default=40,
                       help="held-out retrieval every this many steps; 0: only at the end")
    every.add_argument("--eval-images", type=int, default=256, help="held-out scenes: the retrieval candidates")
    return p


def clip_config(args: argparse.Namespace, vocab_size: int) -> dict:
    """The `model_cfg` of open_clip_config.json: what `open_clip.CLIP(**cfg)` builds."""
    sizes = {name: getattr(args, name) for name in ("embed_dim", "image_size", "patch_size", "vision_width",
                                                     "vision_layers", "vision_head_width", "text_width",
                                                     "text_layers", "text_heads", "context_length")}
    bad = [f"--{k.replace('_', '-')} {v}" for k, v in sizes.items() if v <= 0]
    if bad or args.mlp_ratio <= 0:
        raise ConfigError(f"model sizes must be positive, got {', '.join(bad) or f'--mlp-ratio {args.mlp_ratio}'}")
    for what, whole, part in [("--image-size", args.image_size, args.patch_size),
                              ("--vision-width", args.vision_width, args.vision_head_width),
                              ("--text-width", args.text_width, args.text_heads)]:
        if whole % part:
            raise ConfigError(f"{what} {whole} is not a multiple of {part}; pick sizes that divide")
    return {
        "embed_dim": args.embed_dim,
        "quick_gelu": False,
        "vision_cfg": {"image_size": args.image_size, "patch_size": args.patch_size, "width": args.vision_width,
                       "layers": args.vision_layers, "head_width": args.vision_head_width,
                       "mlp_ratio": args.mlp_ratio},
        "text_cfg": {"context_length": args.context_length, "vocab_size": vocab_size, "width": args.text_width,
                     "heads": args.text_heads, "layers": args.text_layers, "mlp_ratio": args.mlp_ratio},
    }


def build_clip(config: dict) -> open_clip.CLIP:
    model = open_clip.CLIP(**copy.deepcopy(config))  # open_clip turns the nested dicts into its cfg classes
    # What open_clip's factory sets from the preprocess config; save_config_for_hf writes them out again.
    model.visual.image_mean, model.visual.image_std = IMAGE_MEAN, IMAGE_STD
    return model


def parameter_counts(model: open_clip.CLIP) -> dict:
    visual = sum(p.numel() for p in model.visual.parameters())
    total = sum(p.numel() for p in model.parameters())
    embedding = model.token_embedding.weight.numel()
    return {"total": total, "visual": visual, "text": total - visual - model.logit_scale.numel(),
            "token_embedding": embedding}


@dataclass
class Pairs:
    """Images with their captions, aligned."""
    pixels: torch.Tensor  # (N, 3, S, S) uint8
    tokens: torch.Tensor  # (N, context_length) int64, open_clip's tokenizer
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)


def load_pairs(args: argparse.Namespace, split: str, size: int, tokenizer, limit: int | None = None) -> Pairs:
    directory = Path(args.data)
    if not is_scene_dataset(directory):
        what = "is not a scene dataset (no dataset_info.json)" if directory.is_dir() else "does not exist"
        raise ImageDataError(f"--data {directory} {what}; CLIP trains on image-caption pairs: make them with "
                             "`glyph data scenes --out data/scenes`")
    images = load_images(directory, split, size, limit=limit)
    refuse_or_skip(images.skipped, args.skip_bad)
    captions = _captions(directory / f"{split}.jsonl")
    texts = [captions[path] for path in images.paths]
    tokens = tokenizer(texts)  # (N, L), zero-padded; a caption that fills all L may have been cut
    full = int((tokens[:, -1] != 0).sum())
    if full:
        print(f"{full} {split} caption(s) fill all {tokens.shape[1]} tokens of --context-length and may be cut",
              file=sys.stderr)
    return Pairs(images.pixels, tokens, texts)


def _captions(index: Path) -> dict[Path, str]:
    captions = {}
    for number, line in enumerate(index.read_text().splitlines(), start=1):
        row = json.loads(line)  # load_images has already read this file and refused malformed JSON
        if not isinstance(row.get("caption"), str) or not row["caption"].strip():
            raise ImageDataError(f"{index} row {number} has no caption; regenerate the dataset with "
                                 "`glyph data scenes`")
        captions[index.parent / row["image"]] = row["caption"]
    return captions


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) uint8 → float as open_clip's preprocessing gives it: /255, then the saved mean and std."""
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (pixels.float() / 255 - mean) / std


def training_batch(pairs: Pairs, step: int, args: argparse.Namespace, rank: int, world: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's share of `step`'s batch: (B/world, 3, S, S) normalised pixels, (B/world, L) tokens."""
    chosen = batch_indices(step, args.batch_size, len(pairs), args.seed)[rank::world]
    pixels = normalize(pairs.pixels[chosen])
    if args.shift:
        pixels = random_shift(pixels, args.shift, torch.Generator().manual_seed(args.seed + 7 * step))
    return pixels.to(device), pairs.tokens[chosen].to(device)


def random_shift(pixels: torch.Tensor, most: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to `most` px each way, the edge (plain background) repeated into the gap."""
    size = pixels.shape[-1]
    padded = F.pad(pixels, (most,) * 4, mode="replicate")  # (B, 3, S + 2m, S + 2m)
    dx, dy = torch.randint(0, 2 * most + 1, (2, len(pixels)), generator=generator).tolist()
    return torch.stack([p[:, y:y + size, x:x + size] for p, x, y in zip(padded, dx, dy)])


def decayed(name: str, parameter: torch.Tensor) -> bool:
    """Weight decay as open_clip's trainer sets it: not on gains, biases, embeddings' scale or the logit scale."""
    exempt = parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
    return not exempt


def main(argv: list[str] | None = None) -> int:
    return trainer_main("clip", lambda: prepare(argv), train_loop)


def prepare(argv: list[str] | None) -> tuple | None:
    """(args, config, training pairs, held-out pairs); None when --out is already trained."""
    args = parse_with_recipe(build_parser(), argv)
    tokenizer = open_clip.SimpleTokenizer(context_length=args.context_length)
    config = clip_config(args, tokenizer.vocab_size)
    if args.batch_size < 2:
        raise ConfigError(f"--batch-size {args.batch_size}: contrastive training needs at least 2 pairs a step")
    state = previous_state(args, fits=lambda saved: saved["config"] == config)
    if already_trained(state, args.out):
        return None
    train = load_pairs(args, "train", args.image_size, tokenizer)
    held_out = load_pairs(args, "validation", args.image_size, tokenizer, limit=args.eval_images)
    if len(train) < args.batch_size:
        raise ImageDataError(f"--data {args.data} has {len(train)} training pairs, fewer than --batch-size "
                             f"{args.batch_size}")
    return args, config, train, held_out


def train_loop(args: argparse.Namespace, config: dict, train: Pairs, held_out: Pairs) -> int:
    accelerator, precision = start_accelerator(args.precision, args.out)
    rank, world = accelerator.process_index, accelerator.num_processes
    per_process(args.batch_size, world)
    torch.manual_seed(args.seed)
    model = build_clip(config)
    optimizer = adamw(model, args.lr, args.weight_decay, betas=(0.9, 0.98), eps=1e-6, decayed=decayed)
    run = Run.resume(args, "clip", accelerator, model, optimizer, args.warmup, args.steps, fresh={"config": config})
    # Over several processes each one scores its own images against every process's texts, as open_clip does.
    loss_fn = open_clip.ClipLoss(local_loss=world > 1, gather_with_grad=world > 1, cache_labels=True,
                                 rank=rank, world_size=world)
    model, optimizer = run.prepare(model, optimizer)
    counts = parameter_counts(run.inner_model)
    print(f"training CLIP ({counts['total'] / 1e6:.2f} M parameters, {counts['visual'] / 1e6:.2f} M in the image "
          f"tower) on {len(train)} pairs, precision {'bf16' if precision == 'bf16' else 'fp32'}, "
          f"{args.steps} steps of {args.batch_size}")

    with run.interruptible():
        for step in run.steps():
            model.train()
            pixels, tokens = training_batch(train, step, args, rank, world, accelerator.device)
            with accelerator.autocast():
                image_features, text_features, logit_scale = model(pixels, tokens)  # (B, E), (B, E), ()
            loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
            accelerator.backward(loss)
            run.optimizer_step()
            with torch.no_grad():  # open_clip keeps the temperature in [1, 100]
                run.inner_model.logit_scale.clamp_(0, math.log(100))
            if run.log_due():
                row = log_row(run.step, loss, image_features, text_features, logit_scale, run.lr())
                run.log(row, loss=f"{row['loss']:.3f}", acc=f"{row['batch_acc']:.0%}",
                        scale=f"{row['logit_scale']:.1f}", img_s=f"{run.per_second(args.batch_size):.0f}")
            if run.due(args.eval_every):
                row = {"step": run.step, **retrieval(run.inner_model, held_out)[0]}
                run.log_eval(row, {f"held_out/{k}": v for k, v in row.items() if k != "step"})
                run.say(f"step {run.step}: held-out retrieval " + _summary(row))
            run.end_step()
    return run.finish(lambda: finish(args, run.inner_model, run.state, held_out, precision, counts))


def log_row(step: int, loss: torch.Tensor, image_features: torch.Tensor, text_features: torch.Tensor,
            logit_scale: torch.Tensor, lr: float) -> dict:
    with torch.no_grad():
        similarity = image_features.float() @ text_features.float().T  # (B, B)
        hits = similarity.argmax(1) == torch.arange(len(similarity), device=similarity.device)
    return {"step": step, "loss": float(loss.detach()), "batch_acc": float(hits.float().mean()),
            "logit_scale": float(logit_scale.detach()), "lr": lr}


def _summary(row: dict) -> str:
    return " ".join(f"{k}={row[k]:.1%}" for k in RETRIEVAL_CURVES)


@torch.no_grad()
def embed(model: open_clip.CLIP, pairs: Pairs, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised embeddings of every image and caption: (N, E) each."""
    model.eval()
    device = next(model.parameters()).device
    images, texts = [], []
    for start in range(0, len(pairs), batch):
        images.append(model.encode_image(normalize(pairs.pixels[start:start + batch]).to(device), normalize=True))
        texts.append(model.encode_text(pairs.tokens[start:start + batch].to(device), normalize=True))
    return torch.cat(images).float().cpu(), torch.cat(texts).float().cpu()


def retrieval(model: open_clip.CLIP, pairs: Pairs) -> tuple[dict, torch.Tensor]:
    """Image→text and text→image top-1/top-5 among all of `pairs`, and each image's best caption index.

    A candidate counts as right when its caption is the same text as the true
    one: two held-out scenes with one caption cannot be told apart from it.
    """
    images, texts = embed(model, pairs)
    similarity = images @ texts.T  # (N images, N captions)
    same = torch.tensor([[a == b for b in pairs.captions] for a in pairs.captions])  # (N, N)
    metrics = {}
    for name, scores in (("i2t", similarity), ("t2i", similarity.T)):
        ranked = scores.topk(min(5, len(pairs)), dim=1).indices  # (N, k)
        right = same.gather(1, ranked)  # (N, k): is the k-th best candidate right?
        metrics[f"{name}_top1"] = float(right[:, 0].float().mean())
        metrics[f"{name}_top5"] = float(right.any(1).float().mean())
    return metrics, similarity.argmax(1)


def save_open_clip(model: open_clip.CLIP, config: dict, out: Path) -> None:
    """open_clip's hub layout: its config JSON (model and preprocess config) and the weights, each swapped in whole."""
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_save(str(out / WEIGHTS_FILE)) as file:
        file.write(safetensors_bytes(weights))
    partial = out / f".{CONFIG_FILE}.partial-{os.getpid()}"  # open_clip's own writer takes a path, not a file
    save_config_for_hf(model, partial, config)
    os.replace(partial, out / CONFIG_FILE)


def finish(args: argparse.Namespace, model: open_clip.CLIP, state: dict, held_out: Pairs, precision: str,
           counts: dict) -> None:
    """The trained CLIP at --out, its held-out report and pictures."""
    save_open_clip(model, state["config"], args.out)
    metrics, best = retrieval(model, held_out)
    report = {"train_seconds": round(state["seconds"], 1), "steps": state["step"], "batch_size": args.batch_size,
              "seconds_per_step": round(state["seconds"] / max(1, state["step"]), 3),
              "precision": "bf16" if precision == "bf16" else "fp32", "parameters": counts,
              "held_out": {"candidates": len(held_out), "chance_top1": round(1 / len(held_out), 4), **metrics},
              "during_training": state["evals"], "config": state["config"]}
    write_json_atomic(args.out / "report.json", report)
    retrieval_sheet(held_out, best, args.out / "retrieval.png")
    loss_curves(state["history"], CURVES, args.out / "curves.png", f"CLIP training ({args.out.name})",
                log_keys=("loss",))
    if state["evals"]:
        loss_curves(state["evals"], RETRIEVAL_CURVES, args.out / "held_out.png",
                    f"held-out retrieval among {len(held_out)} ({args.out.name})", log_keys=())
    print(f"held-out retrieval among {len(held_out)}: " + _summary(metrics))
    print(f"wrote {args.out} (look at {args.out / 'retrieval.png'} and {args.out / 'curves.png'})")


def retrieval_sheet(pairs: Pairs, best: torch.Tensor, path: Path) -> Path:
    """Held-out scenes, each above its true caption and the caption it retrieves (green right, red wrong)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    shown = min(SHEET_SCENES, len(pairs))
    figure, axes = plt.subplots(1, shown, figsize=(2.6 * shown, 4.2), squeeze=False)
    for i, axis in enumerate(axes[0]):
        axis.imshow(pairs.pixels[i].permute(1, 2, 0).numpy(), interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        found = pairs.captions[int(best[i])]
        right = found == pairs.captions[i]
        axis.set_title("\n".join(textwrap.wrap(pairs.captions[i], 30)[:6]), fontsize=6, loc="left")
        axis.set_xlabel("→ " + "\n".join(textwrap.wrap(found, 30)[:6]), fontsize=6, loc="left",
                        color="green" if right else "red")
    figure.suptitle("held-out scenes: true caption above, retrieved caption below")
    figure.tight_layout()
    save_png_atomic(figure, path)
    plt.close(figure)
    return path


if __name__ == "__main__":
    sys.exit(main())
