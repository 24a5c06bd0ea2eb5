"""lmms-eval's hooks for the scene VQA task: the image, the question, and the score `glyph eval assistant` gives.

lmms-eval imports this file by its path (`!function utils.NAME` in scene_vqa.yaml); images are found beside it.
"""
from pathlib import Path

from PIL import Image

from scenes.reading import short_answer

DATA = Path(__file__).resolve().parent / "data"


def doc_to_visual(doc: dict) -> list[Image.Image]:
    with Image.open(DATA / doc["image"]) as image:
        return [image.convert("RGB")]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return doc["question"]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """1.0 when the reply's short answer is the scene's (the reader of `glyph eval assistant`), else 0.0; counted
    overall and under the question's kind."""
    right = float(short_answer(doc["kind"], results[0]) == doc["short"])
    return {"accuracy": right, doc["kind"]: right}
