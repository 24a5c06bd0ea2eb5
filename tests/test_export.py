"""glyph export --format hf-merged: plain transformers + safetensors give the assistant's own logits."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig
from PIL import Image
from safetensors.torch import load_file
from tiny_parts import assistant_config, build_parts
from transformers import (AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer,
                          CLIPImageProcessor, CLIPVisionModel)

from assistant.model import GlyphModel, load_assistant
from assistant.templates import render_chat
from training import export


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("parts"))


def trained_assistant(parts, folder, projector: str, merge: int):
    """An assistant whose every trained part is away from its start, so that a part lost or mixed up shows."""
    torch.manual_seed(3)
    model = GlyphModel.build(assistant_config(parts, projector, merge))
    model.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name or name.startswith(("vocab.", "projector.")):
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.save_pretrained(folder)


def plain_hf_logits(out, image, prompt_ids, manifest):
    """What a user without Glyph computes from the export (its README's recipe)."""
    llm = AutoModelForCausalLM.from_pretrained(out / "language_model").eval()
    vision = CLIPVisionModel.from_pretrained(out / "vision_tower").eval()
    processor = CLIPImageProcessor.from_pretrained(out / "vision_tower")
    projector = load_file(out / "projector" / "model.safetensors")
    with torch.no_grad():
        pixels = processor(images=image, return_tensors="pt").pixel_values
        hidden = vision(pixels, output_hidden_states=True).hidden_states[manifest["vision_feature_layer"]][:, 1:]
        b, n, d = hidden.shape
        side, k = int(n ** 0.5), manifest["projector_merge"]
        hidden = hidden.view(b, side // k, k, side // k, k, d).permute(0, 1, 3, 2, 4, 5).reshape(b, -1, k * k * d)
        rows = F.linear(F.gelu(F.linear(hidden, projector["linear_1.weight"], projector["linear_1.bias"])),
                        projector["linear_2.weight"], projector["linear_2.bias"])
        embeds = llm.get_input_embeddings()(prompt_ids)
        slots = prompt_ids == manifest["image_token_id"]
        embeds[slots] = rows.reshape(-1, rows.shape[-1])
        return pixels, llm(inputs_embeds=embeds).logits


@pytest.mark.parametrize("merge", [1, 2])
def test_hf_merged_loads_without_glyph_and_gives_the_assistants_logits(parts, tmp_path, merge):
    folder = trained_assistant(parts, tmp_path / "assistant", "mlp2x_gelu", merge)
    out = tmp_path / "export"
    assert export.main(["--model", str(folder), "--out", str(out)]) == 0
    glyph = load_assistant(folder)
    manifest = json.loads((out / export.MANIFEST).read_text())
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": "what is in the picture?"}]}]
    prompt = render_chat(messages, glyph.tokenizer, glyph.layout, add_generation_prompt=True)
    ids = prompt.input_ids[None]
    pixels, logits = plain_hf_logits(out, image, ids, manifest)
    glyph_pixels = glyph.vision_tower.preprocess(image)[None]
    assert torch.allclose(pixels, glyph_pixels, atol=1e-5)  # CLIPImageProcessor does open_clip's preprocessing
    with torch.no_grad():
        expected = glyph(ids, pixel_values=glyph_pixels).logits
    assert logits.shape == expected.shape == (1, ids.shape[1], glyph.vocab.size)
    assert torch.allclose(logits, expected, atol=1e-4)
    assert torch.equal(logits[0, -1].argmax(), expected[0, -1].argmax())
    assert not any(p.name.startswith("adapter") for p in out.rglob("*"))  # no peft files: the LoRA is merged


def test_the_exported_tokenizer_knows_the_image_tokens_at_the_manifests_ids(parts, tmp_path):
    folder = trained_assistant(parts, tmp_path / "assistant", "mlp2x_gelu", 1)
    out = tmp_path / "export"
    assert export.main(["--model", str(folder), "--out", str(out)]) == 0
    manifest = json.loads((out / export.MANIFEST).read_text())
    tokenizer = AutoTokenizer.from_pretrained(out / "language_model")
    glyph = load_assistant(folder)
    assert len(tokenizer) == glyph.vocab.size
    assert tokenizer.convert_tokens_to_ids(manifest["image_token"]) == manifest["image_token_id"]
    code_7 = glyph.vocab.tokens.code_format.format(7)
    assert tokenizer.convert_tokens_to_ids(code_7) == manifest["code_token_start"] + 7
    assert tokenizer.chat_template == glyph.tokenizer.chat_template
    assert (out / "vq" / "model.safetensors").is_file()
    readme = (out / "README.md").read_text()
    assert f"Put {manifest['image_seq_length']} copies of `{manifest['image_token']}`" in readme


def test_export_refuses_to_overwrite_and_names_a_missing_model(parts, tmp_path, capsys):
    out = tmp_path / "export"
    out.mkdir()
    assert export.main(["--model", str(tmp_path / "assistant"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert export.main(["--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err
    assert not (tmp_path / "other").exists()


def scene_like_image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))


@torch.no_grad()
def glyph_greedy(glyph, ids, pixels, steps: int) -> list[int]:
    """Glyph's own greedy continuation over its whole vocabulary, stopping after eos."""
    features, new = glyph.image_features(pixels), []
    for _ in range(steps):
        token = int(glyph(ids, image_features=features).logits[0, -1].argmax())
        new.append(token)
        if token == glyph.tokenizer.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return new


def test_llava_export_loads_with_auto_classes_and_answers_with_the_assistants_greedy_tokens(parts, tmp_path):
    folder = trained_assistant(parts, tmp_path / "assistant", "mlp2x_gelu", 1)
    out = tmp_path / "llava"
    assert export.main(["--model", str(folder), "--format", "llava", "--out", str(out)]) == 0
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    glyph = load_assistant(folder)
    image = scene_like_image()
    question = "what is in the picture?"
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
        add_generation_prompt=True)
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    ours = render_chat([{"role": "user", "content": [{"type": "image", "image": image},
                                                    {"type": "text", "text": question}]}],
                       glyph.tokenizer, glyph.layout, add_generation_prompt=True)
    assert inputs.input_ids[0].tolist() == ours.input_ids.tolist()  # the processor lays the chat out as Glyph does
    with torch.no_grad():
        reply = model.generate(**inputs, max_new_tokens=8, do_sample=False)[0, inputs.input_ids.shape[1]:]
    expected = glyph_greedy(glyph, ours.input_ids[None], glyph.vision_tower.preprocess(image)[None], 8)
    assert reply.tolist()[:len(expected)] == expected


def test_llava_export_refuses_a_merging_projector_and_leaves_nothing(parts, tmp_path, capsys):
    folder = trained_assistant(parts, tmp_path / "assistant", "mlp2x_gelu", 2)
    out = tmp_path / "llava"
    capsys.readouterr()
    assert export.main(["--model", str(folder), "--format", "llava", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2x2 patches per slot" in err and "--format hf-merged" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "assistant"]  # no output, no partial folder
