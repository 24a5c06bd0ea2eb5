"""lmms-eval's hooks for the scene VQA tasks: the images, the question, and the score `glyph eval assistant` gives.

lmms-eval imports this file by its path (`!function utils.NAME` in scene_vqa.yaml and
scene_vqa_two_images.yaml); images are found beside it. A row names one image (`image`) or several (`images`).
"""
from pathlib import Path

from PIL import Image

from scenes.reading import short_answer

DATA = Path(__file__).resolve().parent / "data"


def doc_to_visual(doc: dict) -> list[Image.Image]:
    return [_rgb(DATA / name) for name in doc.get("images") or [doc["image"]]]


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return doc["question"]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """1.0 when the reply's short answer is the scene's (the reader of `glyph eval assistant`), else 0.0; counted
    overall and under the question's kind."""
    right = float(short_answer(doc["kind"], results[0]) == doc["short"])
    return {"accuracy": right, doc["kind"]: right}


def process_two_image_results(doc: dict, results: list[str]) -> dict[str, float]:
    """A question about two pictures ("Which picture has more circles?"): right or not, counted overall and under
    its right answer (first, second or same), as `glyph eval assistant`'s vqa_two_images row reports it."""
    right = float(short_answer(doc["kind"], results[0]) == doc["short"])
    return {"accuracy": right, doc["short"]: right}
