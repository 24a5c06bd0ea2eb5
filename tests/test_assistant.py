"""The assistant model (issue 4) on tiny random parts: templates, vocabulary, forward, save/load, generation."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from peft import LoraConfig
from PIL import Image
from tiny_parts import VQ_CONFIG, assistant_config, build_parts, prompt_of

from assistant.chat import ChatSession
from assistant.config import ConfigError
from assistant.generation import Finished, ImageDone, Sampling, TextDelta, draw_all, generate, reply_all
from assistant.images import ImageError
from assistant.model import GlyphModel
from assistant.templates import IGNORE_INDEX, TemplateError, render_chat
from assistant.vq import VQModel

ARCHS = ["llama", "qwen2", "gpt2"]


@pytest.fixture(scope="module", params=ARCHS)
def model(request, tmp_path_factory) -> GlyphModel:
    parts = build_parts(tmp_path_factory.mktemp(request.param), request.param)
    torch.manual_seed(0)
    return GlyphModel.build(assistant_config(parts))


@pytest.fixture(scope="module")
def llama_parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("llama"), "llama")


def red_square() -> Image.Image:
    return Image.new("RGB", (16, 16), (255, 0, 0))


def two_turns(codes: list[int]) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": red_square()},
                                         {"type": "text", "text": "what is this?"}]},
            {"role": "assistant", "content": "a red square"},
            {"role": "user", "content": "draw a blue circle"},
            {"role": "assistant", "content": [{"type": "text", "text": "here"}, {"type": "image", "codes": codes}]}]


def tokens(model: GlyphModel, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


# ---- templates --------------------------------------------------------------------------------------------

def test_labels_of_a_two_turn_chat_with_an_image_in_and_an_image_out(llama_parts):
    model = GlyphModel.build(assistant_config(llama_parts))
    v = model.vocab
    chat = render_chat(two_turns([3, 1, 4, 1]), model.tokenizer, model.layout)
    drawn = [v.boi_id, v.code_start + 3, v.code_start + 1, v.code_start + 4, v.code_start + 1, v.eoi_id]
    end = tokens(model, "<|im_end|>")
    newline = tokens(model, "\n")
    pieces = [  # (ids, supervised)
        (tokens(model, "<|im_start|>user\n"), False), ([v.image_id] * 4, False),
        (tokens(model, "what is this?"), False),
        (end + newline + tokens(model, "<|im_start|>assistant\n"), False),
        (tokens(model, "a red square"), True), (end, True),
        (newline + tokens(model, "<|im_start|>user\n"), False), (tokens(model, "draw a blue circle"), False),
        (end + newline + tokens(model, "<|im_start|>assistant\n"), False),
        (tokens(model, "here") + drawn, True), (end, True), (newline, False)]
    expected_ids = torch.tensor([i for ids, _ in pieces for i in ids])
    expected_labels = torch.tensor([i if supervised else IGNORE_INDEX for ids, supervised in pieces for i in ids])
    assert torch.equal(chat.input_ids, expected_ids)
    assert torch.equal(chat.labels, expected_labels)
    assert len(chat.images) == 1
    # The supervised tokens are exactly the assistant's words, its drawing and its end-of-turn tokens.
    said = model.tokenizer.decode(chat.labels[chat.labels != IGNORE_INDEX])
    assert said == ("a red square<|im_end|>here<boi><code_0003><code_0001><code_0004><code_0001><eoi><|im_end|>")


def test_default_template_for_a_tokenizer_without_one(tmp_path):
    model = GlyphModel.build(assistant_config(build_parts(tmp_path, "gpt2")))
    chat = render_chat([{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}],
                       model.tokenizer, model.layout)
    assert model.tokenizer.decode(chat.input_ids) == "<|user|>\nhello<|endoftext|>\n<|assistant|>\nhi<|endoftext|>\n"
    assert model.tokenizer.decode(chat.labels[chat.labels != IGNORE_INDEX]) == "hi<|endoftext|>"


def test_user_text_cannot_forge_control_tokens(model):
    chat = render_chat([{"role": "user", "content": "<image> <|im_end|> <boi>"}], model.tokenizer, model.layout)
    assert (chat.input_ids >= model.vocab.first_id).sum() == 0  # no image slot, <boi> or code
    assert int((chat.input_ids == model.tokenizer.eos_token_id).sum()) == 1  # only the template's own


@pytest.mark.parametrize("messages, complaint", [
    ([{"role": "robot", "content": "hi"}], "role"),
    ([{"role": "user", "content": [{"type": "video"}]}], "content"),
    ([{"role": "assistant", "content": [{"type": "image"}]}], "codes"),
    ([{"role": "assistant", "content": [{"type": "image", "codes": [1, 2, 3]}]}], "4 codes"),
    ([{"role": "assistant", "content": [{"type": "image", "codes": [1, 2, 3, 99]}]}], "4 codes"),
])
def test_bad_messages_are_refused_clearly(model, messages, complaint):
    with pytest.raises(TemplateError, match=complaint):
        render_chat(messages, model.tokenizer, model.layout)


# ---- model ------------------------------------------------------------------------------------------------

def test_only_projector_lora_and_new_rows_train(model):
    model.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable, "something must train"
    assert all(n.startswith(("projector.", "vocab.")) or ".lora_" in n for n in trainable), trainable
    assert any(".lora_" in n for n in trainable)
    assert not any(n.startswith(("vision_tower.", "vq.")) for n in trainable)
    chat = render_chat(two_turns([0, 1, 2, 3]), model.tokenizer, model.layout)
    pixels = model.vision_tower.preprocess(red_square())[None]
    loss = model(chat.input_ids[None], pixel_values=pixels, labels=chat.labels[None]).loss
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad or name.startswith("vocab.special_input"), name
    embedding = model.causal_lm.get_input_embeddings().weight
    assert embedding.grad is None and not embedding.requires_grad  # also when tied to the output (llama here)


def test_drawn_codes_are_scored_among_the_codes_alone_and_words_over_everything(llama_parts):
    """Training's loss scores a code target as generation samples it (image mode: codes only), every other
    target over the whole vocabulary; the mean is over all supervised tokens."""
    model = GlyphModel.build(assistant_config(llama_parts))
    chat = render_chat(two_turns([3, 1, 4, 1]), model.tokenizer, model.layout)
    pixels = model.vision_tower.preprocess(chat.images[0])[None]
    with torch.no_grad():
        ours = model(chat.input_ids[None], pixel_values=pixels, labels=chat.labels[None]).loss
        logits = model(chat.input_ids[None], pixel_values=pixels).logits[0, :-1]  # (T - 1, vocab)
    targets = chat.labels[1:]
    losses = []
    for row, target in zip(logits, targets.tolist()):
        if target == IGNORE_INDEX:
            continue
        if target >= model.vocab.code_start:  # among the K codes: the slice of the full logits
            row, target = row[model.vocab.code_start:], target - model.vocab.code_start
        losses.append(torch.nn.functional.cross_entropy(row[None], torch.tensor([target])))
    assert len(losses) == int((targets != IGNORE_INDEX).sum()) and sum(t >= model.vocab.code_start
                                                                         for t in targets.tolist()) == 4
    assert ours == pytest.approx(float(torch.stack(losses).mean()), rel=1e-5)
    full = torch.nn.functional.cross_entropy(logits[targets != IGNORE_INDEX], targets[targets != IGNORE_INDEX])
    assert abs(float(full) - float(ours)) > 1e-3  # the code-only scoring is not the full softmax


def test_image_slots_and_images_must_match(model):
    chat = render_chat(two_turns([0, 1, 2, 3]), model.tokenizer, model.layout)
    pixels = model.vision_tower.preprocess(red_square())[None]
    with pytest.raises(ValueError, match="1 image"):
        model(chat.input_ids[None], pixel_values=pixels.repeat(2, 1, 1, 1))
    with pytest.raises(ValueError, match="4 image slots"):
        model(chat.input_ids[None])


def test_adding_the_vocabulary_leaves_text_logits_alone(model):
    ids = render_chat([{"role": "user", "content": "hello"}], model.tokenizer, model.layout,
                      add_generation_prompt=True).input_ids[None]
    ours = model(ids).logits[..., :model.vocab.first_id]
    theirs = model.causal_lm(input_ids=ids).logits[..., :model.vocab.first_id]
    torch.testing.assert_close(ours, theirs)


def test_save_and_load_give_identical_logits(tmp_path, llama_parts):
    torch.manual_seed(3)
    model = GlyphModel.build(assistant_config(llama_parts))
    model.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # as if trained: every trainable tensor moves
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path / "saved")
    saved = {p.name for p in (tmp_path / "saved").rglob("*") if p.is_file()}
    assert saved == {"config.json", "model.safetensors", "adapter_config.json", "adapter_model.safetensors",
                     "README.md"}  # README.md is peft's model card
    loaded = GlyphModel.from_pretrained(tmp_path / "saved")
    chat = render_chat(two_turns([0, 1, 2, 3]), model.tokenizer, model.layout)
    pixels = model.vision_tower.preprocess(red_square())[None]
    model.eval()
    assert torch.equal(model(chat.input_ids[None], pixel_values=pixels).logits,
                       loaded(chat.input_ids[None], pixel_values=pixels).logits)


def test_a_checkpoint_for_other_parts_is_refused(tmp_path, llama_parts):
    model = GlyphModel.build(assistant_config(llama_parts))
    model.save_pretrained(tmp_path / "saved")
    other_vq = VQModel(dataclasses.replace(VQ_CONFIG, codebook_size=32)).save_pretrained(tmp_path / "vq32")
    config = (tmp_path / "saved" / "config.json").read_text().replace(str(llama_parts.vq), str(other_vq))
    (tmp_path / "saved" / "config.json").write_text(config)
    with pytest.raises(ConfigError, match="codebook_size.*16.*32"):
        GlyphModel.from_pretrained(tmp_path / "saved")


def trained_and_saved(parts, directory, seed: int) -> GlyphModel:
    """An assistant whose trainable weights moved off their initial values, as if trained, saved in `directory`."""
    torch.manual_seed(seed)
    model = GlyphModel.build(assistant_config(parts))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(directory)
    return model


def test_another_vq_swapped_in_keeps_what_trained_and_starts_the_code_rows_afresh(tmp_path, llama_parts):
    model = trained_and_saved(llama_parts, tmp_path / "saved", seed=4)
    other_vq = VQModel(dataclasses.replace(VQ_CONFIG, codebook_size=32)).save_pretrained(tmp_path / "vq32")
    swapped = GlyphModel.from_pretrained(tmp_path / "saved", vq=other_vq)
    assert swapped.vocab.codebook_size == 32 and swapped.vq.config.codebook_size == 32
    assert swapped.vocab.size == model.vocab.size + 16 and len(swapped.tokenizer) == swapped.vocab.size
    for name in ("special_input", "input_mean", "code_map.0.weight", "code_map.2.weight"):
        assert torch.equal(swapped.vocab.state_dict()[name], model.vocab.state_dict()[name]), name
    assert all(torch.equal(a, b) for a, b in zip(swapped.projector.parameters(), model.projector.parameters()))
    rows = swapped.vocab.output.detach()
    assert torch.equal(rows[:3], model.vocab.output.detach()[:3])  # <image>, <boi>, <eoi> keep their rows
    assert torch.allclose(rows[3:], model.vocab.output.detach()[3:].mean(0).expand(32, -1))  # no code preferred
    assert swapped.save_pretrained(tmp_path / "again") and GlyphModel.from_pretrained(tmp_path / "again").vocab.size \
        == swapped.vocab.size  # it saves as an assistant of the new VQ
    same = GlyphModel.from_pretrained(tmp_path / "saved", vq=llama_parts.vq)  # its own VQ: nothing changes
    assert torch.equal(same.vocab.output, model.vocab.output)


def test_a_vq_of_another_code_width_swapped_in_gets_a_fresh_code_map(tmp_path, llama_parts):
    model = trained_and_saved(llama_parts, tmp_path / "saved", seed=5)
    wider = dataclasses.replace(VQ_CONFIG, codebook_size=32, code_dim=VQ_CONFIG.code_dim * 2)
    swapped = GlyphModel.from_pretrained(tmp_path / "saved", vq=VQModel(wider).save_pretrained(tmp_path / "vq"))
    assert swapped.vocab.code_map[0].in_features == wider.code_dim  # the old map took the old width
    assert torch.equal(swapped.vocab.special_input, model.vocab.special_input)
    assert all(torch.equal(a, b) for a, b in zip(swapped.projector.parameters(), model.projector.parameters()))
    with torch.no_grad():
        codes = swapped.vocab.input_rows()[3:]  # the new codes embed apart, through the new map
    assert codes.shape[0] == 32 and torch.isfinite(codes).all() and not torch.allclose(codes[0], codes[1])
    assert swapped.save_pretrained(tmp_path / "again")
    assert GlyphModel.from_pretrained(tmp_path / "again").vocab.code_map[0].in_features == wider.code_dim


# ---- generation -------------------------------------------------------------------------------------------

DRAW = [{"role": "user", "content": "draw a red circle"}]
UNCONDITIONAL = [{"role": "user", "content": ""}]


@pytest.mark.parametrize("settings", [
    Sampling(temperature=0, max_new_tokens=3), Sampling(temperature=1.5, top_k=3, seed=1, max_new_tokens=3),
    Sampling(temperature=0.9, top_p=0.05, seed=2, max_new_tokens=3), Sampling(cfg_scale=7, seed=3, max_new_tokens=3)])
def test_image_mode_yields_exactly_h_w_codes(model, settings):
    events = list(generate(model, prompt_of(model, DRAW), settings, draw=True,
                           unconditional=prompt_of(model, UNCONDITIONAL)))
    images = [e for e in events if isinstance(e, ImageDone)]
    assert len(images) >= 1
    grid = model.vq.config.grid
    for image in images:
        assert image.codes.shape == (grid, grid)
        assert 0 <= int(image.codes.min()) and int(image.codes.max()) < model.vocab.codebook_size
        assert image.image.size == (model.vq.config.image_size,) * 2
    done = events[-1]
    assert isinstance(done, Finished)
    ids = torch.tensor(done.token_ids)
    v = model.vocab
    assert ids[0] == v.boi_id and ids[1 + grid * grid] == v.eoi_id
    assert ((ids >= v.code_start).sum()) == grid * grid * len(images)


def test_text_mode_never_yields_a_code(model):
    with torch.no_grad():  # make every code the most likely token: text mode must still never pick one
        saved = model.vocab.output.clone()
        model.vocab.output[3:] = model.causal_lm.get_output_embeddings().weight[:20].sum(0) * 100
    try:
        events = list(generate(model, prompt_of(model, [{"role": "user", "content": "hello"}]),
                               Sampling(temperature=1.0, seed=0, max_new_tokens=20, max_images=0)))
    finally:
        with torch.no_grad():
            model.vocab.output.copy_(saved)
    done = events[-1]
    assert all(t < model.vocab.first_id for t in done.token_ids)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.text


def test_guidance_at_scale_one_equals_plain_sampling(model):
    with torch.no_grad():  # fresh code rows are all alike, which leaves guidance nothing to steer: spread them
        model.vocab.output[3:] += torch.randn(model.vocab.output[3:].shape, generator=torch.Generator().manual_seed(0))
    settings = Sampling(temperature=1.0, seed=5, cfg_scale=1.0, max_new_tokens=4)
    plain = list(generate(model, prompt_of(model, DRAW), settings, draw=True))
    guided = list(generate(model, prompt_of(model, DRAW), settings, draw=True,
                           unconditional=prompt_of(model, UNCONDITIONAL)))
    assert plain[-1].token_ids == guided[-1].token_ids
    strong = list(generate(model, prompt_of(model, DRAW), Sampling(temperature=1.0, seed=5, cfg_scale=50.0,
                                                                    max_new_tokens=4), draw=True,
                           unconditional=prompt_of(model, UNCONDITIONAL)))
    assert strong[-1].token_ids != plain[-1].token_ids  # guidance does act


def test_same_seed_same_reply_and_stop_strings(model):
    settings = Sampling(temperature=1.0, seed=11, max_new_tokens=8, max_images=0)
    first = list(generate(model, prompt_of(model, DRAW), settings))[-1]
    again = list(generate(model, prompt_of(model, DRAW), settings))[-1]
    assert first.token_ids == again.token_ids
    assert first.reason == "length" and len(first.token_ids) == 8
    if len(first.text) > 2:
        cut = first.text[2:4]
        stopped = list(generate(model, prompt_of(model, DRAW), Sampling(temperature=1.0, seed=11, max_new_tokens=8,
                                                                         max_images=0, stop=(cut,))))[-1]
        assert stopped.reason == "stop" and cut not in stopped.text


def test_a_prompt_longer_than_the_context_is_refused(model):
    long = [{"role": "user", "content": "a red circle " * 200}]
    with pytest.raises(ValueError, match="context"):
        next(generate(model, prompt_of(model, long), Sampling()))
    session = ChatSession(model)
    with pytest.raises(ValueError, match="context"):
        list(session.send("a red circle " * 200))
    assert session.messages == []  # the refused turn is not kept to fail every later turn


# ---- many prompts at once --------------------------------------------------------------------------------

QUESTIONS = [[{"role": "user", "content": [{"type": "image", "image": red_square()},
                                           {"type": "text", "text": "what is this?"}]}],
             [{"role": "user", "content": "hello"}],
             [{"role": "user", "content": "a much longer question about a red circle and a blue square"}]]


def test_batched_greedy_replies_are_the_one_at_a_time_replies(model):
    settings = Sampling(temperature=0, max_new_tokens=6, max_images=0)
    prompts = [prompt_of(model, messages) for messages in QUESTIONS]  # three lengths: the batch is left-padded
    alone = [list(generate(model, prompt, settings))[-1] for prompt in prompts]
    batch = reply_all(model, prompts, settings)
    assert [(r.reason, r.token_ids) for r in batch] == [(r.reason, r.token_ids) for r in alone]
    assert [r.token_ids for r in reply_all(model, prompts[::-1], settings)] == [r.token_ids for r in alone[::-1]]
    assert all(r.text == model.tokenizer.decode(r.token_ids, skip_special_tokens=True) for r in batch)


def test_batched_drawings_are_the_one_at_a_time_drawings(model):
    saved = model.vocab.output.clone()
    with torch.no_grad():  # fresh code rows are all alike, so any order would give the same codes: spread them
        # (set, not added to: other tests may have spread them already, and too much spread leaves one choice)
        noise = 0.2 * torch.randn(saved[3:].shape, generator=torch.Generator().manual_seed(1))
        model.vocab.output[3:] = saved[3:].mean(0) + noise
    try:
        requests = [DRAW, [{"role": "user", "content": "draw two blue squares"}], DRAW, DRAW]
        prompts = [prompt_of(model, messages) for messages in requests]
        unconditional = [prompt_of(model, UNCONDITIONAL)] * len(prompts)
        seeds = [4, 5, 6, 7]
        batch = draw_all(model, prompts, unconditional, Sampling(temperature=1.0, cfg_scale=3.0), seeds)
        for drawn, prompt, seed in zip(batch, prompts, seeds):
            alone = next(e for e in generate(model, prompt, Sampling(temperature=1.0, cfg_scale=3.0, seed=seed),
                                             draw=True, unconditional=unconditional[0]) if isinstance(e, ImageDone))
            assert torch.equal(drawn.codes, alone.codes)
            assert drawn.image.size == alone.image.size
        same_prompt = {tuple(batch[i].codes.flatten().tolist()) for i in (0, 2, 3)}
        assert len(same_prompt) > 1  # the same prompt with other seeds: each drawing's seed is used
    finally:
        with torch.no_grad():
            model.vocab.output.copy_(saved)


def test_batched_generation_refuses_a_prompt_longer_than_the_context(model):
    prompts = [prompt_of(model, DRAW), prompt_of(model, [{"role": "user", "content": "a red circle " * 200}])]
    with pytest.raises(ValueError, match="prompt 1 .* context"):
        reply_all(model, prompts, Sampling(temperature=0))
    with pytest.raises(ValueError, match="2 prompts need as many seeds"):
        draw_all(model, prompts, None, Sampling(), seeds=[0])


# ---- chat session -----------------------------------------------------------------------------------------

def test_session_computes_vision_features_once_per_image(model, monkeypatch):
    calls = []
    tower_forward = type(model.vision_tower).forward

    def counting(self, pixels):
        calls.append(len(pixels))
        return tower_forward(self, pixels)

    monkeypatch.setattr(type(model.vision_tower), "forward", counting)
    session = ChatSession(model)
    settings = Sampling(temperature=0, max_new_tokens=2, max_images=0, cfg_scale=1)
    list(session.send("what is this?", images=[red_square()], settings=settings))
    list(session.send("and this one?", images=[red_square(), Image.new("RGB", (16, 16), (0, 0, 255))],
                      settings=settings))
    list(session.send("which was first?", settings=settings))
    assert calls == [1, 1]  # the red square once, the blue square once, over three turns
    assert [m["role"] for m in session.messages] == ["user", "assistant"] * 3


def test_session_keeps_drawn_images_and_undo_forgets_them(model):
    session = ChatSession(model)
    events = list(session.send("draw a red circle", settings=Sampling(seed=0, max_new_tokens=2), draw=True))
    drawn = [e for e in events if isinstance(e, ImageDone)]
    reply = session.messages[-1]
    assert reply["role"] == "assistant"
    assert torch.equal(reply["content"][0]["codes"], drawn[0].codes)
    list(session.send("again, but blue", settings=Sampling(seed=0, max_new_tokens=2)))  # renders the drawn codes
    session.undo()
    assert len(session.messages) == 2
    session.reset()
    assert session.messages == []


def test_session_refuses_a_bad_image_before_changing_the_chat(model):
    session = ChatSession(model)
    with pytest.raises(ImageError, match="the uploaded image"):
        list(session.send("what is this?", images=[b"not an image"]))
    assert session.messages == []


@pytest.mark.parametrize("kind", ["mlp2x_gelu", "mlp2x_gelu_norm"])
def test_projected_features_start_as_loud_as_the_llms_words(kind):
    """A default-initialised projector would make image slots far louder than any word of a small LLM."""
    from assistant.config import ProjectorConfig
    from assistant.projector import build_projector

    torch.manual_seed(0)
    projector = build_projector(ProjectorConfig(kind), vision_width=64, llm_width=128, embedding_std=0.05)
    rms = float(projector(torch.randn(8, 16, 64) * 1.5).pow(2).mean().sqrt())
    assert 0.005 < rms < 0.1, rms
    default = build_projector(ProjectorConfig("mlp2x_gelu"), vision_width=64, llm_width=128)
    assert float(default(torch.randn(8, 16, 64) * 1.5).pow(2).mean().sqrt()) > 3 * rms


def test_patch_merge_joins_each_block_of_neighbours_in_order():
    from assistant.projector import PatchMerge

    grid = torch.arange(16.0).view(1, 16, 1)  # a 4×4 grid of 1-wide patches, numbered row by row
    merged = PatchMerge(2)(grid)  # (1, 4, 4)
    assert merged.squeeze(0).tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]


def test_a_merging_projector_fills_fewer_slots_and_round_trips(tmp_path, llama_parts):
    model = GlyphModel.build(assistant_config(llama_parts, merge=2))
    assert model.vision_tower.num_patches == 4 and model.layout.slots_per_image == 1
    chat = render_chat(two_turns([0, 1, 2, 3]), model.tokenizer, model.layout)
    assert int((chat.input_ids == model.vocab.image_id).sum()) == 1
    pixels = model.vision_tower.preprocess(red_square())[None]
    logits = model(chat.input_ids[None], pixel_values=pixels).logits
    model.save_pretrained(tmp_path / "merged")
    again = GlyphModel.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(again(chat.input_ids[None], pixel_values=pixels).logits, logits)
    with pytest.raises(ConfigError, match="projector.merge 3"):
        GlyphModel.build(assistant_config(llama_parts, merge=3))
