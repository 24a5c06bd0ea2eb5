"""Warm up the projector before stage 1: each image slot is fitted to the LLM's embedding of its words.

    glyph train align ... --slot-words data/chats/slot-words.jsonl --warmup-steps 600

Stage 1 aligns the projector through the frozen LLM from captions alone, and learns slowly what the vision
features hold in a non-linear way: after 300 caption steps on the scene world the captions still named the
wrong shape for 4 of 6 held-out pictures (the colours were right: colour is linear in the features, shape is
not). A grounding file (`glyph data slot-words`) says which words belong in each slot. Here the projector is
fitted, by mean squared error on cached vision features, so that each slot lands on the mean of the LLM's
input embeddings of its words ("large red circle"; "empty"): the frozen LLM then meets each slot close to
words it already reads, and stage 1 goes on from there with the caption loss. It needs no pass through the LLM:
600 steps of 256 images took 93 s on two cores.

Rows: {"image": PATH (relative to the file), "slots": [one text per image slot, in the projector's order]}.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from training.chat_data import ChatDataError, cached_per_file, vision_features, vision_fingerprint

BATCH = 256  # images per warm-up step
HELD_OUT = 0.1  # share of the rows kept out of the fit, to report how well unseen slots land


def read_slot_words(path: Path, slots: int) -> list[tuple[Path, list[str]]]:
    """(image path, its slot texts) of every row; ChatDataError naming the file and line of a bad row."""
    if not path.is_file():
        raise ChatDataError(f"--slot-words {path} does not exist; write it with `glyph data slot-words`")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
            image, texts = path.parent / row["image"], row["slots"]
        except (ValueError, KeyError, TypeError) as error:
            raise ChatDataError(f"{path}:{number} is not a slot-words row ({error}); each line is "
                                '{"image": PATH, "slots": [TEXT, ...]}') from None
        if not isinstance(texts, list) or len(texts) != slots or not all(isinstance(t, str) and t for t in texts):
            raise ChatDataError(f"{path}:{number} gives {len(texts) if isinstance(texts, list) else 'no'} slot texts; "
                                f"this projector fills {slots} slots per image: write the file with the matching "
                                "`glyph data slot-words --grid`")
        rows.append((image, texts))
    if not rows:
        raise ChatDataError(f"--slot-words {path} holds no rows")
    return rows


def word_embeddings(model, texts: list[str]) -> Tensor:
    """(len(texts), H): the mean input embedding of each text's tokens, as the LLM reads it mid-sentence."""
    table = model.causal_lm.get_input_embeddings().weight.detach().float()
    ids = [model.tokenizer(" " + text, add_special_tokens=False)["input_ids"] for text in texts]
    return torch.stack([table[row].mean(0) for row in ids])


def slot_targets(model, slot_words: Path, cache_dir: Path | None) -> tuple[Tensor, Tensor, Tensor]:
    """What the warm-up fits: vision features (M, N, D) of the file's images, the word embeddings of its texts
    (W, H), and for each image's slots the row of its words in them (M, S)."""
    rows = read_slot_words(slot_words, model.layout.slots_per_image)
    cache = cache_dir / f"vision-{vision_fingerprint(model)}.safetensors" if cache_dir is not None else None
    table, row_of, failed = cached_per_file(sorted({image for image, _ in rows}),
                                            lambda images: vision_features(model, images), cache, "vision features")
    if failed:
        raise ChatDataError(f"--slot-words {slot_words}: {next(iter(failed.values()))}; fix or drop that row")
    texts = sorted({t for _, row_texts in rows for t in row_texts})
    text_index = {t: i for i, t in enumerate(texts)}
    features = table[[row_of[image] for image, _ in rows]]
    targets = torch.tensor([[text_index[t] for t in row_texts] for _, row_texts in rows])
    return features, word_embeddings(model, texts), targets


def warm_up_projector(model, slot_words: Path, steps: int, cache_dir: Path | None, seed: int = 0) -> float:
    """Fit model.projector to the words of each slot; the share of held-out slots that land nearest their own
    words (among every text of the file)."""
    features, bank, targets = slot_targets(model, slot_words, cache_dir)
    fit = max(1, round(len(features) * (1 - HELD_OUT)))
    held = slice(fit, None) if fit < len(features) else slice(None)  # one image: report on it
    generator = torch.Generator().manual_seed(seed)
    projector = model.projector
    optimizer = torch.optim.Adam([p for p in projector.parameters() if p.requires_grad], lr=1e-3)
    for _ in tqdm(range(steps), desc="projector warm-up", unit="step"):
        batch = torch.randint(0, fit, (min(BATCH, fit),), generator=generator)
        loss = torch.nn.functional.mse_loss(projector(features[batch]), bank[targets[batch]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return nearest_share(projector, features[held], bank, targets[held])


@torch.no_grad()
def nearest_share(projector, features: Tensor, bank: Tensor, targets: Tensor) -> float:
    """The share of slots whose projection lies nearest (in L2) to their own words' embedding."""
    projected = projector(features).reshape(-1, bank.shape[1])  # (M·S, H)
    nearest = torch.cdist(projected, bank).argmin(-1)
    return float((nearest == targets.reshape(-1)).float().mean())
