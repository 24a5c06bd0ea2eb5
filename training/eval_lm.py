"""Is stage 0's language model ready? Scene questions answered from a caption in its own prompt.

    glyph eval lm --model runs/lm --data data/scenes --split test --scenes 60

The assistant will have to answer questions from image slots through a frozen LM. An LM that cannot even
answer them when the scene is spelled out in its prompt ("Here is a scene: <caption>\\n<question>", as the
text chats put it) will not learn to read pictures either, so this is the LM's readiness test: the same
VQA types and scoring as `glyph eval assistant`, with the caption in place of the image.
Writes context_qa.json into --model and prints the scores.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from assistant.config import ConfigError, write_json_atomic
from scenes.questions import SCENE_IN_TEXT
from training.eval_assistant import load_scenes, one_at_a_time, score_vqa, vqa_questions


def caption_answerer(model, tokenizer, captions: dict[Path, str], max_new_tokens: int = 48):
    @torch.inference_mode()
    def answer(image: Path, question: str) -> str:
        messages = [{"role": "user", "content": SCENE_IN_TEXT.format(caption=captions[image], question=question)}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

    return one_at_a_time(answer)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph eval lm", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="the stage-0 LM directory (glyph train lm)")
    p.add_argument("--data", required=True, type=Path, help="the scene dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--scenes", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        from assistant.llm import ModelLoadError, load_language_model

        items = load_scenes(args.data, args.split, args.scenes)
        model, tokenizer = load_language_model(str(args.model))
    except (ConfigError, ModelLoadError, OSError) as error:
        print(f"glyph eval lm: {error}", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in (args.data / f"{args.split}.jsonl").read_text().splitlines()]
    captions = {args.data / row["image"]: row["caption"] for row in rows}
    report, _ = score_vqa(vqa_questions(items, args.seed), caption_answerer(model, tokenizer, captions))
    write_json_atomic(args.model / "context_qa.json", report)
    print(f"scene questions answered from a caption in the prompt ({len(items)} {args.split} scenes): "
          f"overall {report['overall']:.1%}  " + "  ".join(f"{k} {v:.1%}" for k, v in report["by_type"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
