"""Export an assistant to plain Hugging Face formats that load without Glyph (or peft).

    glyph export --format hf-merged --out exports/scenes-smollm2            # the shipped assistant
    glyph export --model runs/scenes-smollm2 --format hf-merged --out DIR   # a build's or any assistant directory
    glyph export --model runs/scenes-tiny --format llava --out DIR          # LlavaForConditionalGeneration

`hf-merged` writes:

    DIR/language_model/   transformers causal LM, LoRA merged, its vocabulary grown by the image tokens
                          (<image>, <boi>, <eoi>, one per VQ code) with their trained rows; tokenizer and
                          chat template included: AutoModelForCausalLM / AutoTokenizer.from_pretrained
    DIR/vision_tower/     the open_clip tower as transformers' CLIPVisionModel, and its CLIPImageProcessor
    DIR/projector/        model.safetensors (linear_1, linear_2 as in LLaVA's multi_modal_projector) + config.json
    DIR/vq/               the VQ-VAE that turns drawn code tokens into pixels (Glyph's own format)
    DIR/glyph_export.json the token ids and how the parts connect; DIR/README.md says how, in code

Features of an image are CLIPVisionModel's hidden_states[vision_feature_layer] without the class token, each
merge×merge block of patches concatenated (row-major), through the projector: one row per `<image>` slot.

`llava` writes the understanding half (no drawing) as one transformers LlavaForConditionalGeneration directory
with its LlavaProcessor and a chat template that takes multimodal messages: what vLLM and SGLang serve, and
what AutoModelForImageTextToText loads. LLaVA projects each patch on its own, so it fits assistants whose
projector is mlp2x_gelu without patch merging (scenes-tiny's); the shipped scenes-smollm2 merges 2×2 patches
per slot and exports as hf-merged.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPVisionModel

from assistant.config import AssistantConfig, ConfigError, first_line, write_json_atomic
from assistant.hf_format import (
    clip_image_processor,
    clip_vision_config,
    clip_vision_state,
    llava_misfit,
    llava_model,
    merged_causal_lm,
    projector_state,
)
from assistant.model import SHIPPED, GlyphModel, load_assistant, locate
from training.checkpoint import staged_directory

FORMATS = ("hf-merged", "llava")
DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp32": torch.float32}
MANIFEST = "glyph_export.json"


class ExportError(ValueError):
    """An assistant that cannot be exported as asked, or an output that would be overwritten."""


def export(glyph: GlyphModel, out: Path, kind: str = "hf-merged", dtype: torch.dtype | None = None) -> Path:
    """Write `glyph` (its LoRA merged) to `out` in the layout of `kind` (module docstring): into a staged
    folder first, which replaces `out` only once it is whole."""
    if glyph.has_lora:
        raise ExportError("the assistant's LoRA adapter is not merged; load it with load_assistant()")
    with staged_directory(out) as staged:
        {"hf-merged": _write_hf_merged, "llava": _write_llava}[kind](glyph, staged, dtype)
    return out


def _write_hf_merged(glyph: GlyphModel, staged: Path, dtype: torch.dtype | None) -> None:
    _write_language_model(glyph, staged / "language_model", dtype)
    _write_vision_tower(glyph, staged / "vision_tower")
    _write_projector(glyph, staged / "projector")
    shutil.copytree(glyph.config.vq, staged / "vq", ignore=shutil.ignore_patterns(".*"))
    record = manifest(glyph)
    write_json_atomic(staged / MANIFEST, record)
    (staged / "README.md").write_text(USAGE.format(**record))


def _write_llava(glyph: GlyphModel, staged: Path, dtype: torch.dtype | None) -> None:
    try:
        llava, processor = llava_model(glyph, dtype)
    except ValueError as error:
        raise ExportError(str(error)) from None
    llava.save_pretrained(staged)
    processor.save_pretrained(staged)
    write_json_atomic(staged / MANIFEST, manifest(glyph) | {"format": "llava"})
    (staged / "README.md").write_text(LLAVA_USAGE)


def manifest(glyph: GlyphModel) -> dict:
    """What a user needs besides the weights: the new tokens' ids and how the parts connect."""
    vocab, projector = glyph.vocab, glyph.config.projector
    return {"format": "hf-merged", "image_token": vocab.tokens.image, "image_token_id": vocab.image_id,
            "boi_token_id": vocab.boi_id, "eoi_token_id": vocab.eoi_id, "code_token_start": vocab.code_start,
            "codebook_size": vocab.codebook_size, "image_seq_length": glyph.layout.slots_per_image,
            "drawing_tokens": glyph.layout.tokens_per_image, "drawing_grid": glyph.vq.config.grid,
            "vision_feature_layer": glyph.config.vision.feature_layer,
            "vision_feature_select_strategy": "default", "projector_kind": projector.kind,
            "projector_merge": projector.merge, "image_slot_labels": list(projector.slot_labels),
            "image_ids": glyph.layout.image_ids(), "drawing_labels": list(glyph.config.drawing.labels),
            "drawing_label_ids": [list(ids) for ids in glyph.layout.code_label_ids],
            "drawing_describe": glyph.config.drawing.describe}


def _write_language_model(glyph: GlyphModel, folder: Path, dtype: torch.dtype | None) -> None:
    merged = merged_causal_lm(glyph, dtype)
    merged.generation_config.pad_token_id = glyph.tokenizer.pad_token_id
    merged.save_pretrained(folder)
    glyph.tokenizer.save_pretrained(folder)  # it holds the image tokens at their ids, and the chat template


def _write_vision_tower(glyph: GlyphModel, folder: Path) -> None:
    encoder = glyph.vision_tower.encoder
    tower = CLIPVisionModel(clip_vision_config(encoder)).eval()
    missing, unexpected = tower.load_state_dict(clip_vision_state(encoder, ""), strict=False)
    missing = [k for k in missing if not k.startswith("post_layernorm")]  # never read: an earlier
    if missing or unexpected:                                                       # block's features are
        raise ExportError(f"the vision tower did not map onto CLIPVisionModel: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    tower.save_pretrained(folder)
    clip_image_processor(encoder).save_pretrained(folder)


def _write_projector(glyph: GlyphModel, folder: Path) -> None:
    """The projector's layers under LLaVA's names (linear_1, linear_2, and `norm` for mlp2x_gelu_norm)."""
    state = projector_state(glyph.projector)
    folder.mkdir(parents=True)
    save_file(state, folder / "model.safetensors", {"format": "pt"})
    config = glyph.config.projector
    layers = list(dict.fromkeys(k.split(".")[0] for k in state))
    write_json_atomic(folder / "config.json", {"kind": config.kind, "merge": config.merge, "hidden_act": "gelu",
                                               "layers": layers})


USAGE = """# A Glyph assistant, exported for plain Hugging Face (`glyph export --format hf-merged`)

No Glyph and no peft needed: transformers and safetensors load every part.

```python
import torch, torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPImageProcessor, CLIPVisionModel

llm = AutoModelForCausalLM.from_pretrained("language_model")     # LoRA merged, image tokens added
tokenizer = AutoTokenizer.from_pretrained("language_model")
vision = CLIPVisionModel.from_pretrained("vision_tower")
processor = CLIPImageProcessor.from_pretrained("vision_tower")
projector = load_file("projector/model.safetensors")

def image_rows(image, merge={projector_merge}):
    pixels = processor(images=image, return_tensors="pt").pixel_values
    hidden = vision(pixels, output_hidden_states=True).hidden_states[{vision_feature_layer}][:, 1:]  # no class token
    b, n, d = hidden.shape; side = int(n ** 0.5); k = merge
    hidden = hidden.view(b, side // k, k, side // k, k, d).permute(0, 1, 3, 2, 4, 5).reshape(b, -1, k * k * d)
    x = F.linear(hidden, projector["linear_1.weight"], projector["linear_1.bias"])
    x = F.linear(F.gelu(x), projector["linear_2.weight"], projector["linear_2.bias"])
    return x  # (1, {image_seq_length}, hidden): one row per "{image_token}" slot
```

Put {image_seq_length} copies of `{image_token}` (id {image_token_id}) where the image goes in the
user's turn (exactly the ids `image_ids` of glyph_export.json: when `image_slot_labels` is not empty, each
copy follows its label's text ids), embed the ids with `llm.get_input_embeddings()`, write
`image_rows(image)` into those positions and call `llm.generate(inputs_embeds=...)`.

Projector kind: `{projector_kind}` (for `mlp2x_gelu_norm`, an RMSNorm with `norm.weight` follows linear_2).

Drawing: the assistant draws by writing `<boi>` (id {boi_token_id}), then {drawing_tokens} code tokens
(ids {code_token_start} + code, {drawing_grid}×{drawing_grid}, row by row; allow only those ids while
drawing) and `<eoi>` (id {eoi_token_id}). When `drawing_labels` in glyph_export.json is not empty, write
each code's label ids (`drawing_label_ids`) yourself before sampling that code: the assistant was trained to
draw each code after its label. When `drawing_describe` is true, the assistant says what it will draw
before `<boi>` ("Here is a large red circle in the top left corner."): to make it draw, let it write that
sentence and start the image where it ends, rather than forcing `<boi>` first. `vq/` is the VQ-VAE that turns the codes into pixels:
`assistant.vq.VQModel.from_pretrained("vq")` in Glyph.
"""


LLAVA_USAGE = """# A Glyph assistant as transformers' LLaVA (`glyph export --format llava`)

The understanding half (it reads images and answers in text; drawing needs the hf-merged export):

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained(".")
processor = AutoProcessor.from_pretrained(".")
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=image, text=prompt, return_tensors="pt")
reply = model.generate(**inputs, max_new_tokens=64, do_sample=False)
print(processor.decode(reply[0, inputs.input_ids.shape[1]:], skip_special_tokens=True))
```
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None,
                   help="an assistant or glyph build directory (default: the shipped models/scenes-smollm2)")
    p.add_argument("--format", choices=FORMATS, default="hf-merged")
    p.add_argument("--out", required=True, type=Path, help="the directory to write")
    p.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="the language model's weights: auto keeps the loaded dtype (SmolLM2's GGUF loads as fp32)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        print(f"glyph export: {args.out} exists; choose another --out or pass --overwrite", file=sys.stderr)
        return 2
    try:
        if args.format == "llava":  # refused before minutes of loading
            misfit = llava_misfit(AssistantConfig.load(locate(args.model or SHIPPED)).projector)
            if misfit:
                raise ExportError(misfit)
        glyph = load_assistant(args.model)
        out = export(glyph, args.out, args.format, DTYPES[args.dtype])
    except (ConfigError, ExportError) as error:
        print(f"glyph export: {first_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"glyph export: could not write {args.out} ({error})", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"exported {args.model or 'the shipped assistant'} as {args.format} to {out} ({size / 1e6:.0f} MB); "
          f"see {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
