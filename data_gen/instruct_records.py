"""The image records a teacher writes instruction data about: an image with its captions and object boxes.

    records = load_records("data/scenes")                         # a scene dataset (glyph data scenes)
    records = load_records("coco/annotations/captions_val2017.json",
                           instances="coco/annotations/instances_val2017.json", image_folder="coco/val2017")

LLaVA-Instruct's teacher never saw pixels: it read captions and boxes. A scene record also keeps its scene
spec, so the faithfulness check can hold every answer against the truth. Bad input (a record without
captions or boxes, an image file that does not exist, malformed JSON) is named with its row and collected in
`RecordSet.skipped`, never silently dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from scenes.world import Scene

Box = tuple[str, tuple[float, float, float, float]]  # (label, normalised [x1, y1, x2, y2])


class RecordError(ValueError):
    """Input that cannot be read as image records at all."""


@dataclass(frozen=True)
class ImageRecord:
    id: str
    image: Path
    captions: tuple[str, ...]
    boxes: tuple[Box, ...]
    scene: Scene | None = None  # the spec, when the image is a rendered scene


@dataclass
class RecordSet:
    records: list[ImageRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)


def load_records(path: str | Path, instances: str | Path | None = None,
                 image_folder: str | Path | None = None, split: str = "train") -> RecordSet:
    """Scene dataset folder → its `split`; a COCO captions file (+ instances file) → one record per image."""
    path = Path(path)
    if path.is_dir():
        if not (path / "dataset_info.json").is_file():
            raise RecordError(f"--in {path} is a folder but not a scene dataset (no dataset_info.json); pass one "
                              "made by `glyph data scenes`, or a COCO captions JSON with --instances")
        return _scene_records(path, split)
    if not path.is_file():
        raise RecordError(f"--in {path} does not exist; pass a scene dataset folder or a COCO captions JSON")
    if instances is None:
        raise RecordError(f"--in {path} is a COCO captions file; also pass --instances (COCO's instances JSON, "
                          "for the object boxes)")
    return _coco_records(path, Path(instances), Path(image_folder) if image_folder else path.parent)


def _scene_records(directory: Path, split: str) -> RecordSet:
    index = directory / f"{split}.jsonl"
    if not index.is_file():
        raise RecordError(f"{index} does not exist; the scene dataset has no {split!r} split")
    found = RecordSet([])
    for number, line in enumerate(index.read_text().splitlines(), start=1):
        where = f"{index} row {number}"
        try:
            row = json.loads(line)
            scene = Scene.from_dict(row)
            image, record_id, caption = directory / row["image"], str(row["id"]), row.get("caption")
        except (ValueError, KeyError, TypeError) as error:
            found.skipped.append((where, f"malformed row ({error})"))
            continue
        boxes = tuple((f"{o.size} {o.color} {o.shape}", o.box) for o in scene.objects)
        problem = _problem(image, [caption] if isinstance(caption, str) and caption.strip() else [], boxes)
        if problem:
            found.skipped.append((where, problem))
            continue
        found.records.append(ImageRecord(record_id, image, (caption,), boxes, scene))
    return found


def _coco_records(captions_file: Path, instances_file: Path, folder: Path) -> RecordSet:
    captions, instances = _read_json(captions_file), _read_json(instances_file)
    try:
        images = {image["id"]: image for image in captions["images"]}
        names = {category["id"]: category["name"] for category in instances["categories"]}
        texts: dict[int, list[str]] = {}
        for note in captions["annotations"]:
            texts.setdefault(note["image_id"], []).append(note["caption"].strip())
        boxes: dict[int, list[Box]] = {}
        for note in instances["annotations"]:
            image = images.get(note["image_id"])
            if image is None:
                continue
            x, y, w, h = note["bbox"]  # COCO boxes are pixels [x, y, width, height]
            W, H = image["width"], image["height"]
            box = (round(x / W, 3), round(y / H, 3), round((x + w) / W, 3), round((y + h) / H, 3))
            boxes.setdefault(note["image_id"], []).append((names[note["category_id"]], box))
    except (KeyError, TypeError) as error:
        raise RecordError(f"{captions_file} / {instances_file} are not COCO caption and instance files "
                          f"(missing {error})") from error
    found = RecordSet([])
    for image_id, image in images.items():
        path = folder / image["file_name"]
        problem = _problem(path, texts.get(image_id, []), boxes.get(image_id, []))
        if problem:
            found.skipped.append((f"{captions_file} image {image_id}", problem))
            continue
        found.records.append(ImageRecord(str(image_id), path, tuple(texts[image_id]), tuple(boxes[image_id])))
    return found


def _problem(image: Path, captions: list[str], boxes) -> str | None:
    if not captions:
        return "no caption"
    if not boxes:
        return "no object boxes"
    if not image.is_file():
        return f"image {image} does not exist"
    return None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise RecordError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RecordError(f"{path} is not valid JSON ({error})") from error


def context(record: ImageRecord) -> str:
    """What the teacher is shown: captions and boxes, in the prompts' `### context` layout."""
    lines = [f"Captions: {' '.join(record.captions)}", "Objects:"]
    lines += [f"- {label} [{', '.join(f'{v:.2f}' for v in box)}]" for label, box in record.boxes]
    return "\n".join(lines)
