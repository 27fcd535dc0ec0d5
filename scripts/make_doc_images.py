"""Draw the graph pictures the node help pages show (web/docs/images/*.png) from the templates in
example_workflows/: each node a box with its title, sockets and widget values, each link a curve
in its type's colour, as the canvas draws them. Offline and small (a palette PNG, tens of KB).

    .venv/bin/python scripts/make_doc_images.py

Only Pillow and its built-in font, so it draws the same anywhere. Titles and socket names are the
English ones (the font has no CJK glyphs); every page names the nodes in its own language.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.load_pack import load_pack  # noqa: E402

OUT = ROOT / "web" / "docs" / "images"
# picture: the template it shows
PICTURES = {
    "text_to_video_with_sound": "Kling 3.0 text to video with sound",
    "storyboard": "Kling 3.0 storyboard in three shots",
    "image_references": "Kling O1 video from image references",
    "elements": "Kling O1 video with elements from your library",
    "video_reference": "Kling O1 next shot from a reference video",
    "prompt_list": "Kling O1 prompt list, one task per line",
    "collect_by_id": "Collect a Kling task by its id",
}
WIDTH = 900  # px of the picture; the graph is scaled to fit
ROW, TITLE, PAD = 17, 24, 14
BACKGROUND, BOX, BOX_EDGE, TITLE_BAR = (32, 32, 36), (53, 53, 85), (110, 115, 190), (34, 34, 51)
CORE_BOX, CORE_TITLE = (53, 53, 53), (40, 40, 40)
TEXT, MUTED, VALUE = (235, 235, 245), (160, 165, 190), (200, 220, 160)
TYPE_COLORS = {"IMAGE": (100, 183, 231), "AUDIO": (235, 160, 90), "VIDEO": (220, 110, 110), "MASK": (120, 200, 120),
               "STRING": (160, 200, 120), "FLOAT": (190, 190, 120), "OMNI_REFS": (200, 150, 230),
               "OMNI_SHOTS": (240, 200, 110), "OMNI_REQUEST": (130, 210, 200), "OMNI_TASK": (230, 130, 180)}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
FONT = ImageFont.load_default(size=12)
BOLD = ImageFont.load_default(size=13)


def sockets_and_widgets(cls) -> tuple[list, list, list]:
    """(socket inputs [(name, type)], outputs [(name, type)], widget names) of a pack node."""
    spec = cls.INPUT_TYPES()
    inputs, widgets = [], []
    for part in ("required", "optional"):
        for name, (kind, *_) in spec.get(part, {}).items():
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                widgets.append(name)
            else:
                inputs.append((name, kind))
    return inputs, list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES)), widgets


def shorten(text, limit: int) -> str:
    text = ("true" if text else "false") if isinstance(text, bool) else " ".join(str(text).split())  # as the canvas writes it
    return text if len(text) <= limit else text[: limit - 1] + "…"


def layout(workflow: dict, defs: dict, names: dict) -> list[dict]:
    """Every node but the Notes, as {id, title, pack, inputs, outputs, widgets, x, y}."""
    boxes = []
    for node in workflow["nodes"]:
        if node["type"] == "Note":
            continue
        cls = defs.get(node["type"])
        if cls:
            inputs, outputs, widget_names = sockets_and_widgets(cls)
            values = node.get("widgets_values") or []
            widgets = [(n, v) for n, v in zip(widget_names, values) if not (isinstance(v, str) and v == "")]
        else:
            inputs = [(i["name"], i["type"]) for i in node.get("inputs", [])]
            outputs = [(o["name"], o["type"]) for o in node.get("outputs", [])]
            widgets = [("", v) for v in (node.get("widgets_values") or [])[:1] if isinstance(v, (str, int, float))]
        boxes.append({"id": node["id"], "title": node.get("title") or names.get(node["type"], node["type"]),
                      "pack": bool(cls), "inputs": inputs, "outputs": outputs, "widgets": widgets,
                      "x": node["pos"][0], "y": node["pos"][1], "w": node["size"][0]})
    return boxes


def draw(workflow: dict, defs: dict, names: dict, path: Path) -> None:
    boxes = layout(workflow, defs, names)
    for b in boxes:
        b["h"] = TITLE + PAD + ROW * (max(len(b["inputs"]), len(b["outputs"])) + len(b["widgets"]))
    left = min(b["x"] for b in boxes) - 30
    top = min(b["y"] for b in boxes) - 30
    right = max(b["x"] + b["w"] for b in boxes) + 30
    bottom = max(b["y"] + b["h"] for b in boxes) + 30
    scale = min(1.0, WIDTH / (right - left))
    # Drawn at graph size and scaled once: lines and text stay crisp enough at 0.5-1x.
    image = Image.new("RGB", (int(right - left), int(bottom - top)), BACKGROUND)
    pen = ImageDraw.Draw(image)
    where = {}  # (node id, "in"/"out", slot) -> (x, y)
    for b in boxes:
        x, y = b["x"] - left, b["y"] - top
        fill, bar = (BOX, TITLE_BAR) if b["pack"] else (CORE_BOX, CORE_TITLE)
        pen.rounded_rectangle([x, y, x + b["w"], y + b["h"]], radius=8, fill=fill, outline=BOX_EDGE if b["pack"] else (90, 90, 90))
        pen.rounded_rectangle([x, y, x + b["w"], y + TITLE], radius=8, fill=bar)
        pen.text((x + 10, y + TITLE / 2), shorten(b["title"], 44), font=BOLD, fill=TEXT, anchor="lm")
        for i, (name, kind) in enumerate(b["inputs"]):
            cy = y + TITLE + PAD / 2 + ROW * i + ROW / 2
            pen.ellipse([x - 4, cy - 4, x + 4, cy + 4], fill=TYPE_COLORS.get(kind, MUTED))
            pen.text((x + 10, cy), name, font=FONT, fill=MUTED, anchor="lm")
            where[(b["id"], "in", i)] = (x, cy)
        for i, (name, kind) in enumerate(b["outputs"]):
            cy = y + TITLE + PAD / 2 + ROW * i + ROW / 2
            ox = x + b["w"]
            pen.ellipse([ox - 4, cy - 4, ox + 4, cy + 4], fill=TYPE_COLORS.get(kind, MUTED))
            pen.text((ox - 10, cy), name, font=FONT, fill=MUTED, anchor="rm")
            where[(b["id"], "out", i)] = (ox, cy)
        first = y + TITLE + PAD / 2 + ROW * max(len(b["inputs"]), len(b["outputs"]))
        for i, (name, value) in enumerate(b["widgets"]):
            cy = first + ROW * i + ROW / 2
            pen.text((x + 10, cy), f"{name}  " if name else "", font=FONT, fill=MUTED, anchor="lm")
            shift = pen.textlength(f"{name}  ", font=FONT) if name else 0
            pen.text((x + 10 + shift, cy), shorten(value, int((b["w"] - 20 - shift) / 6.5)), font=FONT, fill=VALUE, anchor="lm")
    # Links: from an output slot to an input slot (index among the node's socket inputs).
    socket_index = {}
    for node in workflow["nodes"]:
        for i, socket in enumerate(node.get("inputs", [])):
            socket_index[(node["id"], i)] = i
    for _, source, slot, target, target_slot, kind in workflow["links"]:
        a, b = where.get((source, "out", slot)), where.get((target, "in", socket_index.get((target, target_slot))))
        if not (a and b):
            continue
        bend = max(40, abs(b[0] - a[0]) / 2)
        curve = [bezier(a, (a[0] + bend, a[1]), (b[0] - bend, b[1]), b, t / 24) for t in range(25)]
        pen.line(curve, fill=TYPE_COLORS.get(kind, MUTED), width=3)
    if scale < 1:
        image = image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS)
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def bezier(p0, p1, p2, p3, t):
    u = 1 - t
    return (u ** 3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t ** 3 * p3[0],
            u ** 3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t ** 3 * p3[1])


def main() -> None:
    pack = load_pack()
    OUT.mkdir(parents=True, exist_ok=True)
    for picture, template in PICTURES.items():
        workflow = json.loads((ROOT / "example_workflows" / f"{template}.json").read_text(encoding="utf-8"))
        path = OUT / f"{picture}.png"
        draw(workflow, pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS, path)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
