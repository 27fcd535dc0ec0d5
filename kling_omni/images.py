"""Reference images for the API: check the size rules, encode to raw Base64 in one or two passes.

The contract (image_list items): JPG/JPEG or PNG, at most 10 MB, each side at least 300
px, aspect ratio between 1:2.5 and 2.5:1, sent as raw Base64 (no `data:` prefix).

Size limit: the API says the *image* may be 10 MB, i.e. the file bytes. We aim lower,
at 7.5 MB of file bytes, because then even the Base64 text (4/3 larger) is under 10 MB:
whichever of the two the server measures, the request passes. Kling renders at most
1080p, so a reference needs no more than MAX_UPLOAD_SIDE on its longer side and a
JPEG at quality 92 of that size is ~1.5 MB for a photo and ~4 MB for pure noise: the
budget is a safety net, not something normal images come near.

Format: PNG where it is exact and small (small images, flat graphics with few colours),
JPEG quality 92 otherwise. Images are never cropped or enlarged; too-small or too-oblong
images are refused with a message naming the node, the input and the limit.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .errors import InputError

MAX_IMAGE_BYTES = 10_000_000  # the API's limit, read in the stricter (decimal) sense
ENCODE_BUDGET = MAX_IMAGE_BYTES * 3 // 4  # file bytes whose Base64 is also <= MAX_IMAGE_BYTES
MIN_SIDE = 300
MAX_ASPECT = 2.5
# Kling renders at most 1920x1080: 2048 keeps a full-HD first frame untouched and stops
# a 12 MP photo from becoming a 4 MB upload of pixels the model never sees.
MAX_UPLOAD_SIDE = 2048

JPEG_QUALITY = 92
JPEG_FALLBACK_QUALITY = 80  # only when shrinking further would break MIN_SIDE
# Bytes per pixel of a quality-92 4:2:0 JPEG of pure noise (measured: 0.97); real
# pictures are 3-10x smaller. Used to predict a first attempt that cannot miss.
JPEG_WORST_BYTES_PER_PIXEL = 1.0
PNG_SMALL_PIXELS = 512 * 512  # at most ~0.8 MB raw: PNG costs little and stays exact
PNG_MAX_COLOURS = 256  # fewer distinct colours than this in a sample: graphics, PNG wins
PNG_COMPRESS_LEVEL = 6  # measured: as fast as 1-3 here, 3x smaller on flat graphics; 9/optimize cost seconds
MAX_PASSES = 4


@dataclass(frozen=True)
class EncodedImage:
    # Not in repr: ComfyUI prints node inputs into error reports and the history.
    b64: str = field(repr=False)  # raw Base64, no data: prefix
    format: str = "png"  # "png" or "jpeg"
    width: int = 0
    height: int = 0
    nbytes: int = 0  # encoded file bytes (before Base64)
    sha256: str = ""  # hex digest of the encoded bytes
    passes: int = 1  # how many encodes it took
    # Of the source pixels: what the picture is, whatever the encoder (a Pillow upgrade
    # must not turn the same request into a new paid intent).
    source_sha256: str = ""


def check_image_size(width: int, height: int, *, node: str, input: str, index: int | None = None) -> None:
    """Refuse sizes the API would reject. Never crops or upscales: the user decides."""
    name = input if index is None else f"{input}[{index}]"
    value = f"{width}x{height}"
    if min(width, height) < MIN_SIDE:
        raise InputError(node, name, value, f"each side must be at least {MIN_SIDE} px; "
                                            "upscale or pick a larger image")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT + 1e-9:
        raise InputError(node, name, value, f"aspect ratio 1:{ratio:.2f} is outside the allowed "
                                            f"1:{MAX_ASPECT}..{MAX_ASPECT}:1; crop it first")


def encode_image(pixels, *, max_bytes: int = ENCODE_BUDGET, max_side: int = MAX_UPLOAD_SIDE,
                 node: str = "CometOmni", input: str = "image", index: int | None = None) -> EncodedImage:
    """Encode one picture (torch tensor or numpy array, HxWx3, float 0..1 or uint8) for image_list."""
    rgb = to_uint8_rgb(pixels, node=node, input=input if index is None else f"{input}[{index}]")
    height, width = rgb.shape[:2]
    check_image_size(width, height, node=node, input=input, index=index)
    image = Image.fromarray(rgb)

    # First attempt, predicted from the pixel count: cap the longer side, and shrink further
    # only if even a worst-case JPEG of this many pixels could not fit.
    scale = min(1.0, max_side / max(width, height))
    worst = width * height * scale * scale * JPEG_WORST_BYTES_PER_PIXEL
    if worst > max_bytes:
        scale *= math.sqrt(max_bytes / worst)
    pixels = width * height * scale * scale
    # PNG of a small picture can't exceed its raw size by more than a little: it is a safe bet.
    small = pixels <= PNG_SMALL_PIXELS and pixels * 3 * 1.01 + 1024 <= max_bytes
    use_png = small or _few_colours(rgb)

    passes = 0
    quality = JPEG_QUALITY
    while passes < MAX_PASSES:
        scale, quality = _keep_min_side(width, height, scale, quality)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        candidate = image if size == (width, height) else _resize(image, size)
        data = _encode(candidate, "png" if use_png else "jpeg", quality)
        passes += 1
        if len(data) <= max_bytes:
            return _result(data, "png" if use_png else "jpeg", size, passes, rgb)
        if use_png:
            use_png = False  # PNG was a bet on flat content; JPEG of the same pixels next
            continue
        if quality < JPEG_QUALITY:
            break  # already at the smallest allowed size and the fallback quality
        # JPEG bytes fall roughly with the pixel count, a little slower (fewer pixels carry
        # more detail each): aim at 80% of the budget.
        scale *= math.sqrt(0.8 * max_bytes / len(data))
    raise InputError(node, input if index is None else f"{input}[{index}]", f"{width}x{height}",
                     f"could not be encoded under {max_bytes} bytes without shrinking a side below {MIN_SIDE} px")


def to_uint8_rgb(pixels, *, node: str = "CometOmni", input: str = "image") -> np.ndarray:
    """A ComfyUI IMAGE ([1,H,W,C] or [H,W,C], float 0..1) or uint8 array as HxWx3 uint8.

    NaN or infinite pixels (an overflowed VAE decode, say) are refused: they would become
    black or white pixels in a request that is paid for."""
    if hasattr(pixels, "detach"):  # torch.Tensor, without importing torch here
        pixels = pixels.detach().cpu().numpy()
    arr = np.asarray(pixels)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected one HxWx3 picture, got an array of shape {tuple(np.shape(pixels))}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[..., :3]  # the API has no use for alpha
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)  # one pass: ~1/4 of the conversion below
        if not finite.all():
            bad = int(arr.size - np.count_nonzero(finite))
            raise InputError(node, input, f"{bad} NaN or infinite values among {arr.size}",
                             "every pixel must be a number from 0 to 1; NaN or infinite ones would be sent as "
                             "black or white (often an overflowed VAE decode or upscale): fix the node that "
                             "made this image")
        out = np.empty(arr.shape, dtype=np.uint8)
        np.clip(arr * np.float32(255.0) + np.float32(0.5), 0, 255, out=out, casting="unsafe")
        return out
    raise ValueError(f"expected float 0..1 or uint8 pixels, got {arr.dtype}")


def _few_colours(rgb: np.ndarray) -> bool:
    """Flat graphics (logos, diagrams, screenshots) have few distinct colours; a sample tells."""
    height, width = rgb.shape[:2]
    step = max(1, int(math.sqrt(height * width / 65536)))
    sample = rgb[::step, ::step].reshape(-1, 3).astype(np.uint32)
    packed = (sample[:, 0] << 16) | (sample[:, 1] << 8) | sample[:, 2]
    return np.unique(packed).size <= PNG_MAX_COLOURS


def _keep_min_side(width: int, height: int, scale: float, quality: int) -> tuple[float, int]:
    """Never shrink the shorter side below MIN_SIDE; lower the JPEG quality instead."""
    floor = MIN_SIDE / min(width, height)
    if scale < floor:
        return min(1.0, floor), min(quality, JPEG_FALLBACK_QUALITY)
    return scale, quality


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Lanczos, with a cheap box pre-reduction for big factors (reducing_gap): same look, a fraction of the time.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        image.save(buffer, format="JPEG", quality=quality, subsampling="4:2:0", optimize=False)
    return buffer.getvalue()


def _result(data: bytes, fmt: str, size: tuple[int, int], passes: int, source: np.ndarray) -> EncodedImage:
    shape = "x".join(map(str, source.shape)).encode()
    return EncodedImage(
        b64=base64.b64encode(data).decode("ascii"), format=fmt, width=size[0], height=size[1],
        nbytes=len(data), sha256=hashlib.sha256(data).hexdigest(), passes=passes,
        source_sha256=hashlib.sha256(shape + b":" + np.ascontiguousarray(source).tobytes()).hexdigest(),
    )
