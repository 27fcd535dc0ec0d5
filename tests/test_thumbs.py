"""The sidebar's thumbnails: the first frame of a real MP4, small, cached, remade when the MP4 changes."""

import io
import os

import av
import numpy as np
import pytest
from PIL import Image

from fake_cometapi.media import make_mp4, read_index
from kling_omni import thumbs
from kling_omni.errors import DecodeError


def picture(data):
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def test_the_first_frame_at_most_320_wide_cached(tmp_path, monkeypatch):
    video = make_mp4(tmp_path / "kling_1.mp4", seconds=0.5, fps=12, width=640, height=360, audio=False)
    cache = tmp_path / "thumbs"
    image = picture(thumbs.thumbnail(video, cache, "1"))
    assert image.size == (320, 180)
    assert read_index(np.asarray(image.convert("RGB"))) == 0  # frame 0, not a later one
    assert (cache / "1.jpg").is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(av, "open", no_decoding)
    assert picture(thumbs.thumbnail(video, cache, "1")).size == (320, 180)  # from the cache


def test_a_changed_video_gets_a_new_thumbnail(tmp_path):
    video = make_mp4(tmp_path / "kling_2.mp4", seconds=0.5, fps=12, width=640, height=360, audio=False)
    cache = tmp_path / "thumbs"
    assert picture(thumbs.thumbnail(video, cache, "2")).size == (320, 180)
    fresh = make_mp4(tmp_path / "other.mp4", seconds=0.5, fps=12, width=200, height=200, audio=False)
    os.replace(fresh, video)  # fetched again, as a download renames its file into place
    assert picture(thumbs.thumbnail(video, cache, "2")).size == (200, 200)  # small: never upscaled


def test_without_a_writable_cache_the_thumbnail_is_still_made(tmp_path):
    video = make_mp4(tmp_path / "kling_3.mp4", seconds=0.5, fps=12, width=160, height=120, audio=False)
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    assert picture(thumbs.thumbnail(video, blocked / "thumbs", "3")).size == (160, 120)


def test_a_file_that_is_no_video_is_a_decode_error(tmp_path):
    broken = tmp_path / "kling_4.mp4"
    broken.write_bytes(b"<html>gateway error</html>")
    with pytest.raises(DecodeError):
        thumbs.thumbnail(broken, tmp_path / "thumbs", "4")
