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
import shutil
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.push_to_hf_hub import save_config_for_hf
from safetensors.torch import save_file
from tqdm import tqdm

from assistant.config import ConfigError, write_json_atomic
from training.checkpoint import CheckpointError, load_checkpoint, read_state, save_checkpoint
from training.harness import SaveSchedule, add_save_options, already_trained, start_accelerator
from training.image_data import ImageDataError, ImageSet, is_scene_dataset, load_images
from training.pictures import loss_curves, save_png_atomic
from training.precision import PRECISIONS
from training.recipe import RecipeError, parse_with_recipe
from training.schedule import cosine_with_warmup

CONFIG_FILE = "open_clip_config.json"  # the names open_clip's hub and local-dir loaders look for
WEIGHTS_FILE = "open_clip_model.safetensors"
IMAGE_MEAN, IMAGE_STD = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
SHEET_SCENES = 8  # held-out scenes shown in retrieval.png
CURVES = ["loss", "batch_acc", "logit_scale", "lr"]
RETRIEVAL_CURVES = ["i2t_top1", "t2i_top1", "i2t_top5", "t2i_top5"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph train clip", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a scene dataset (glyph data scenes): images with captions")
    p.add_argument("--out", required=True, type=Path, help="run directory: model, checkpoint, report")
    p.add_argument("--overwrite", action="store_true", help="delete --out and train from scratch")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (they are counted and listed)")
    model = p.add_argument_group("model (open_clip model config)")
    model.add_argument("--embed-dim", type=int, default=128, help="width of the shared image-text embedding")
    model.add_argument("--image-size", type=int, default=64)
    model.add_argument("--patch-size", type=int, default=8, help="(image-size / patch-size)² patch tokens")
    model.add_argument("--vision-width", type=int, default=128, help="the patch feature width the projector sees")
    model.add_argument("--vision-layers", type=int, default=4)
    model.add_argument("--vision-head-width", type=int, default=32, help="heads = vision-width / this")
    model.add_argument("--text-width", type=int, default=128)
    model.add_argument("--text-layers", type=int, default=3)
    model.add_argument("--text-heads", type=int, default=4)
    model.add_argument("--context-length", type=int, default=64, help="text tokens; longer captions are cut")
    model.add_argument("--mlp-ratio", type=float, default=4.0, help="MLP width / model width, both towers")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int, default=160)
    train.add_argument("--batch-size", type=int, default=64, help="pairs per step; every other pair is a negative")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--warmup", type=int, default=10, help="linear warm-up steps before the cosine decay")
    train.add_argument("--weight-decay", type=float, default=0.1, help="on matrices only, as open_clip does")
    train.add_argument("--shift", type=int, default=0,
                       help="random shifts of up to this many pixels (never flips: captions say left/right)")
    train.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 autocast only where this machine runs it faster")
    train.add_argument("--seed", type=int, default=0)
    every = p.add_argument_group("outputs")
    every.add_argument("--log-every", type=int, default=5)
    every.add_argument("--eval-every", type=int, default=40,
                       help="held-out retrieval every this many steps; 0: only at the end")
    add_save_options(every, 40)
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
    _report_skipped(images, args.skip_bad)
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


def _report_skipped(images: ImageSet, skip_bad: bool) -> None:
    if not images.skipped:
        return
    listing = "\n".join(f"  {path}: {why}" for path, why in images.skipped[:10])
    more = f"\n  ... and {len(images.skipped) - 10} more" if len(images.skipped) > 10 else ""
    if not skip_bad:
        raise ImageDataError(f"{len(images.skipped)} image(s) could not be read:\n{listing}{more}\n"
                             "fix or remove them, or pass --skip-bad to train without them")
    print(f"skipping {len(images.skipped)} unreadable image(s):\n{listing}{more}", file=sys.stderr)


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) uint8 → float as open_clip's preprocessing gives it: /255, then the saved mean and std."""
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (pixels.float() / 255 - mean) / std


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """The pair indices of `step`'s batch: each epoch is a fresh permutation fixed by (seed, epoch).

    Deriving batches from the step alone makes a resumed run see exactly the
    batches the uninterrupted run would have seen. Unlike the VQ-VAE's batches
    these never straddle two epochs, so no pair is its own negative; the last
    n mod batch_size pairs of each permutation wait for a later epoch.
    """
    per_epoch = n // batch_size
    epoch, offset = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[offset * batch_size:(offset + 1) * batch_size]


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


def optimizer_for(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.AdamW:
    """AdamW as open_clip's trainer sets it up: no weight decay on gains, biases, embeddings' scale or logit scale."""
    def exempt(name: str, p: torch.Tensor) -> bool:
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if exempt(n, p)], "weight_decay": 0.0},
              {"params": [p for n, p in named if not exempt(n, p)], "weight_decay": args.weight_decay}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.98), eps=1e-6, fused=True)


def prepare_out(args: argparse.Namespace, config: dict) -> dict | None:
    """The saved training state to resume from, or None; refuses a checkpoint of another config."""
    if args.overwrite and args.out.exists():
        shutil.rmtree(args.out)
    state = read_state(args.out / "checkpoint")
    if state is not None and state["config"] != config:
        raise ConfigError(f"{args.out / 'checkpoint'} was trained with another model config; "
                          "use a new --out, or --overwrite to start over")
    return state


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_with_recipe(build_parser(), argv)
        tokenizer = open_clip.SimpleTokenizer(context_length=args.context_length)
        config = clip_config(args, tokenizer.vocab_size)
        if args.batch_size < 2:
            raise ConfigError(f"--batch-size {args.batch_size}: contrastive training needs at least 2 pairs a step")
        state = prepare_out(args, config)
        if already_trained(state, args.out):
            return 0
        train = load_pairs(args, "train", args.image_size, tokenizer)
        held_out = load_pairs(args, "validation", args.image_size, tokenizer, limit=args.eval_images)
        if len(train) < args.batch_size:
            raise ImageDataError(f"--data {args.data} has {len(train)} training pairs, fewer than --batch-size "
                                 f"{args.batch_size}")
    except (ConfigError, ImageDataError, RecipeError, ValueError) as error:
        print(f"glyph train clip: {error}", file=sys.stderr)
        return 2
    try:
        train_loop(args, config, train, held_out)
    except CheckpointError as error:
        print(f"glyph train clip: {error}", file=sys.stderr)
        return 2
    return 0


def train_loop(args: argparse.Namespace, config: dict, train: Pairs, held_out: Pairs) -> None:
    accelerator, precision = start_accelerator(args.precision, args.out)
    saving = SaveSchedule(args.save_every, args.save_minutes, accelerator)
    rank, world = accelerator.process_index, accelerator.num_processes
    if args.batch_size % world:
        raise SystemExit(f"glyph train clip: --batch-size {args.batch_size} does not split over {world} processes")
    torch.manual_seed(args.seed)
    model = build_clip(config)
    optimizer = optimizer_for(model, args)
    scheduler = cosine_with_warmup(optimizer, args.warmup, args.steps)
    state = load_checkpoint(args.out / "checkpoint", model, optimizer, scheduler) or {
        "step": 0, "history": [], "evals": [], "seconds": 0.0, "config": config}
    if state["step"]:
        print(f"resuming {args.out} from step {state['step']} of {args.steps}")
    # Over several processes each one scores its own images against every process's texts, as open_clip does.
    loss_fn = open_clip.ClipLoss(local_loss=world > 1, gather_with_grad=world > 1, cache_labels=True,
                                 rank=rank, world_size=world)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.init_trackers("clip", config={k: str(v) for k, v in vars(args).items()})
    counts = parameter_counts(accelerator.unwrap_model(model))
    print(f"training CLIP ({counts['total'] / 1e6:.2f} M parameters, {counts['visual'] / 1e6:.2f} M in the image "
          f"tower) on {len(train)} pairs, precision {'bf16' if precision == 'bf16' else 'fp32'}, "
          f"{args.steps} steps of {args.batch_size}")

    progress = tqdm(total=args.steps, initial=state["step"], desc="clip", unit="step")
    started, started_step, earlier_seconds = time.perf_counter(), state["step"], state["seconds"]

    def save() -> None:
        state["seconds"] = earlier_seconds + time.perf_counter() - started  # wall time over every resumed run
        if accelerator.is_main_process:  # every process holds the same weights; one writes them
            save_checkpoint(args.out / "checkpoint", accelerator.unwrap_model(model), optimizer, scheduler, state)

    try:
        for step in range(state["step"], args.steps):
            model.train()
            pixels, tokens = training_batch(train, step, args, rank, world, accelerator.device)
            with accelerator.autocast():
                image_features, text_features, logit_scale = model(pixels, tokens)  # (B, E), (B, E), ()
            loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():  # open_clip keeps the temperature in [1, 100]
                accelerator.unwrap_model(model).logit_scale.clamp_(0, math.log(100))
            state["step"] = step + 1
            if state["step"] % args.log_every == 0 or state["step"] == args.steps:
                row = log_row(state["step"], loss, image_features, text_features, logit_scale, scheduler)
                state["history"].append(row)
                accelerator.log(row, step=state["step"])
                rate = (state["step"] - started_step) * args.batch_size / (time.perf_counter() - started)
                progress.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['batch_acc']:.0%}",
                                     scale=f"{row['logit_scale']:.1f}", img_s=f"{rate:.0f}")
            progress.update(1)
            if args.eval_every and state["step"] % args.eval_every == 0 and state["step"] < args.steps:
                row = {"step": state["step"], **retrieval(accelerator.unwrap_model(model), held_out)[0]}
                state["evals"].append(row)
                accelerator.log({f"held_out/{k}": v for k, v in row.items() if k != "step"}, step=state["step"])
                progress.write(f"step {state['step']}: held-out retrieval " + _summary(row))
            if saving.due(state["step"]):
                save()
    except KeyboardInterrupt:
        save()
        progress.close()
        print(f"\nstopped at step {state['step']}; the same command resumes from there", file=sys.stderr)
        raise SystemExit(130)
    progress.close()
    state["seconds"] = earlier_seconds + time.perf_counter() - started
    if accelerator.is_main_process:
        finish(args, accelerator.unwrap_model(model), state, held_out, precision, counts)
    state["finished"] = True  # only once the model and report are written
    save()
    accelerator.end_training()


def log_row(step: int, loss: torch.Tensor, image_features: torch.Tensor, text_features: torch.Tensor,
            logit_scale: torch.Tensor, scheduler) -> dict:
    with torch.no_grad():
        similarity = image_features.float() @ text_features.float().T  # (B, B)
        hits = similarity.argmax(1) == torch.arange(len(similarity), device=similarity.device)
    return {"step": step, "loss": float(loss.detach()), "batch_acc": float(hits.float().mean()),
            "logit_scale": float(logit_scale.detach()), "lr": scheduler.get_last_lr()[0]}


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
    partial = out / f".{WEIGHTS_FILE}.partial-{os.getpid()}"
    save_file(weights, partial)
    os.replace(partial, out / WEIGHTS_FILE)
    partial = out / f".{CONFIG_FILE}.partial-{os.getpid()}"
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
