"""Reference images: size rules, format choice, byte budget, downscaling."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from kling_omni import images
from kling_omni.errors import InputError
from kling_omni.images import MAX_UPLOAD_SIDE, check_image_size, encode_image


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Gradients plus grain: what a photo costs a JPEG encoder."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    base = 0.5 + 0.3 * np.sin(6 * xs + 4 * ys + np.array([0, 1, 2], dtype=np.float32))
    return np.clip(base + rng.normal(0, 0.05, (height, width, 3)), 0, 1).astype(np.float32)


def decoded(enc) -> np.ndarray:
    raw = base64.b64decode(enc.b64, validate=True)
    assert len(raw) == enc.nbytes and hashlib.sha256(raw).hexdigest() == enc.sha256
    with Image.open(io.BytesIO(raw)) as im:
        assert im.format.lower() == enc.format and im.size == (enc.width, enc.height)
        return np.asarray(im.convert("RGB"))


# --- size rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("w, h, limit", [(200, 900, "at least 300 px"), (900, 299, "at least 300 px"),
                                         (1000, 300, "1:2.5"), (300, 751, "1:2.5")])
def test_size_errors_name_node_input_value_and_limit(w, h, limit):
    with pytest.raises(InputError) as err:
        check_image_size(w, h, node="CometOmniRefs", input="images", index=2)
    message = str(err.value)
    assert err.value.node == "CometOmniRefs" and err.value.input == "images[2]"
    assert f"{w}x{h}" in message and limit in message and "CometOmniRefs" in message


@pytest.mark.parametrize("w, h", [(300, 300), (750, 300), (300, 750), (4000, 3000)])
def test_sizes_inside_the_rules_pass(w, h):
    check_image_size(w, h, node="n", input="i")


def test_encode_refuses_a_too_small_image_instead_of_upscaling():
    with pytest.raises(InputError) as err:
        encode_image(np.zeros((299, 400, 3), np.uint8), node="CometOmniSubmit", input="first_frame")
    assert err.value.input == "first_frame" and "400x299" in str(err.value)


# --- format choice -------------------------------------------------------------------------

def test_small_image_stays_png_and_round_trips_exactly():
    pixels = (photo(400, 320) * 255).astype(np.uint8)
    enc = encode_image(pixels)
    assert enc.format == "png" and enc.passes == 1
    assert np.array_equal(decoded(enc), pixels)


def test_float_comfy_image_round_trips_exactly_through_png():
    levels = torch.randint(0, 256, (1, 300, 360, 3), dtype=torch.uint8)
    enc = encode_image(levels.float() / 255.0)  # a ComfyUI IMAGE batch of one
    assert enc.format == "png" and np.array_equal(decoded(enc), levels[0].numpy())


def test_flat_graphics_stay_png_even_when_large():
    graphic = np.full((1500, 2000, 3), 255, np.uint8)
    graphic[200:900, 300:1200] = (200, 30, 30)
    graphic[1000:1400, 100:1900] = (20, 60, 200)
    enc = encode_image(graphic)
    assert enc.format == "png" and enc.passes == 1 and np.array_equal(decoded(enc), graphic)
    assert enc.nbytes < 100_000


def test_photo_goes_jpeg_high_quality_and_is_raw_base64():
    pixels = (photo(1200, 900) * 255).astype(np.uint8)
    enc = encode_image(pixels)
    assert enc.format == "jpeg" and enc.passes == 1 and (enc.width, enc.height) == (1200, 900)
    assert not enc.b64.startswith("data:")
    back = decoded(enc).astype(np.float32)
    # Quality 92: the picture survives (per-pixel colour grain is what 4:2:0 drops, so compare 8x8 means).
    blocks = lambda a: a.reshape(112, 8, 150, 8, 3).mean(axis=(1, 3))  # noqa: E731
    assert np.abs(blocks(back[:896]) - blocks(pixels[:896].astype(np.float32))).mean() < 1.5


# --- byte budget -----------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [40_000, 120_000, 400_000])
def test_noisy_image_lands_under_a_small_budget_in_at_most_two_passes(budget):
    noise = np.random.default_rng(1).integers(0, 256, (1600, 1200, 3), dtype=np.uint8)
    enc = encode_image(noise, max_bytes=budget)
    assert enc.nbytes <= budget and enc.passes <= 2
    assert min(enc.width, enc.height) >= images.MIN_SIDE
    assert enc.width / enc.height == pytest.approx(1200 / 1600, abs=0.01)


def test_second_pass_fixes_an_optimistic_first_guess(monkeypatch):
    # Pretend JPEGs are tiny so the first attempt overshoots: the second, sized from the
    # first attempt's bytes, must land.
    monkeypatch.setattr(images, "JPEG_WORST_BYTES_PER_PIXEL", 0.02)
    pixels = (photo(1600, 1200, seed=3) * 255).astype(np.uint8)
    enc = encode_image(pixels, max_bytes=60_000)
    assert enc.passes == 2 and enc.nbytes <= 60_000 and enc.format == "jpeg"


def test_png_bet_that_misses_falls_back_to_jpeg_once(monkeypatch):
    monkeypatch.setattr(images, "PNG_MAX_COLOURS", 10**9)  # treat everything as graphics
    pixels = (photo(800, 800, seed=4) * 255).astype(np.uint8)
    enc = encode_image(pixels, max_bytes=300_000)
    assert enc.format == "jpeg" and enc.passes == 2 and enc.nbytes <= 300_000


def test_impossible_budget_is_an_input_error():
    noise = np.random.default_rng(2).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="could not be encoded under 1000 bytes"):
        encode_image(noise, max_bytes=1000, node="CometOmniRefs", input="images", index=0)


def test_default_budget_keeps_base64_under_the_api_limit():
    assert images.ENCODE_BUDGET * 4 / 3 <= images.MAX_IMAGE_BYTES


# --- downscaling -----------------------------------------------------------------------------

def test_downscale_only_past_the_maximum_side():
    at_limit = (photo(MAX_UPLOAD_SIDE, 1152) * 255).astype(np.uint8)
    enc = encode_image(at_limit)
    assert (enc.width, enc.height) == (MAX_UPLOAD_SIDE, 1152)
    big = (photo(3000, 2000) * 255).astype(np.uint8)
    enc = encode_image(big)
    assert (enc.width, enc.height) == (MAX_UPLOAD_SIDE, 1365)  # aspect 3:2 kept
    tall = (photo(1200, 2600) * 255).astype(np.uint8)
    enc = encode_image(tall)
    assert enc.height == MAX_UPLOAD_SIDE and enc.width == round(1200 * MAX_UPLOAD_SIDE / 2600)


def test_input_shapes_and_types():
    gray = np.full((320, 320), 0.5, np.float32)
    rgba = np.zeros((320, 320, 4), np.uint8)
    assert decoded(encode_image(gray)).shape == (320, 320, 3)
    assert decoded(encode_image(rgba)).shape == (320, 320, 3)
    with pytest.raises(ValueError):
        encode_image(np.zeros((2, 320, 320, 3), np.float32))  # a batch: the caller picks one
