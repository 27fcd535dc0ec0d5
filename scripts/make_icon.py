"""Draw the pack's Registry icon: docs/images/icon.png, square, 400 px (issue 17's limit; the
Registry's own is 800 x 400). A play button with a comet's tail (Kling video through CometAPI)
that still reads as small as the Manager lists it, and the pack's name under it.

    .venv/bin/python scripts/make_icon.py

Only Pillow and its built-in font (Aileron, Pillow >= 10.1), so it draws the same anywhere.
pyproject.toml's [tool.comfy] Icon is this file's raw GitHub URL; the archive does not ship it.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
ICON = ROOT / "docs" / "images" / "icon.png"
SIZE = 400
SCALE = 4  # drawn at 4x and scaled down: smooth edges without antialiasing primitives
TOP, BOTTOM = (24, 30, 72), (66, 28, 104)  # night blue to violet
TAIL = [(255, 196, 64), (255, 128, 48), (236, 72, 120)]  # the comet's tail, head to end
WHITE = (255, 255, 255)


def _background(size: int) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((size, size))
    card = Image.composite(Image.new("RGB", (size, size), BOTTOM), Image.new("RGB", (size, size), TOP), gradient)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 5, fill=255)
    card.putalpha(mask)
    return card


def _comet(size: int) -> Image.Image:
    """Three tapering streaks from the upper left into the play button, blurred a little."""
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    u = size / 100
    head = (50 * u, 42 * u)
    for color, offset, length, width in zip(TAIL, (-7, 0, 7), (40, 46, 36), (5.5, 7, 5.5)):
        start = (head[0] - length * u + offset * u * 0.6, head[1] - length * u * 0.62 - offset * u)
        end = (head[0] + offset * u * 0.3, head[1] - offset * u * 0.55)
        # a wedge: a point at the far end, the full width at the head
        dx, dy = end[0] - start[0], end[1] - start[1]
        norm = (dx * dx + dy * dy) ** 0.5
        nx, ny = -dy / norm * width * u / 2, dx / norm * width * u / 2
        draw.polygon([start, (end[0] + nx, end[1] + ny), (end[0] - nx, end[1] - ny)], fill=color + (230,))
    return layer.filter(ImageFilter.GaussianBlur(size / 400))


def _play(size: int) -> Image.Image:
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    u = size / 100
    draw = ImageDraw.Draw(layer)
    triangle = [(42 * u, 25 * u), (76 * u, 45 * u), (42 * u, 65 * u)]
    draw.polygon(triangle, fill=WHITE)
    return layer


def _label(size: int) -> Image.Image:
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    u = size / 100
    name = ImageFont.load_default(size=int(15 * u))
    maker = ImageFont.load_default(size=int(8.5 * u))
    draw.text((50 * u, 80 * u), "Kling Omni", font=name, fill=WHITE, anchor="ms", stroke_width=int(0.6 * u),
              stroke_fill=WHITE)
    draw.text((50 * u, 91 * u), "CometAPI", font=maker, fill=TAIL[0], anchor="ms")
    return layer


def draw_icon() -> Image.Image:
    big = SIZE * SCALE
    icon = _background(big)
    for layer in (_comet(big), _play(big), _label(big)):
        icon.alpha_composite(layer)
    return icon.resize((SIZE, SIZE), Image.LANCZOS)


def main() -> None:
    ICON.parent.mkdir(parents=True, exist_ok=True)
    draw_icon().save(ICON, optimize=True)
    print(f"wrote {ICON.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
