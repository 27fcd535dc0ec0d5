"""Decoding the downloaded MP4: every selection option, audio alignment, unlinked outputs.

The clips are real H.264+AAC MP4s from fake_cometapi.media: frame i carries i in its
pixels (read_index) and the audio is a tone whose loudness ramps 0 -> 0.8 over the clip.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref

import av
import numpy as np
import pytest
import torch

from fake_cometapi.media import audio_amplitude_at, frame_pixels, make_mp4, read_index
from kling_omni import video
from kling_omni.errors import DecodeCancelled, DecodeError, InputError
from kling_omni.video import FrameSelection, decode_video, probe

SECONDS, FPS, W, H, RATE = 2.0, 24, 320, 240, 44100
N = int(SECONDS * FPS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return {
        "av": make_mp4(root / "av.mp4", SECONDS, FPS, W, H, sample_rate=RATE),
        "silent": make_mp4(root / "silent.mp4", SECONDS, FPS, W, H, audio=False),
        "portrait": make_mp4(root / "portrait.mp4", 1.0, FPS, 240, 320, audio=False),
    }


def indices(frames: torch.Tensor) -> list[int]:
    return [read_index(f.numpy()) for f in frames]


def corrupt(src, dst, kind: str):
    """Copy `src` with every packet of one stream overwritten by garbage, the index intact."""
    with av.open(str(src)) as container:
        stream = getattr(container.streams, kind)[0]
        spans = [(p.pos, p.size) for p in container.demux(stream) if p.size and p.pos is not None and p.pos >= 0]
    data = bytearray(open(src, "rb").read())
    for pos, size in spans:
        data[pos:pos + size] = b"\xff" * size
    dst.write_bytes(bytes(data))
    return dst


# --- probe ---------------------------------------------------------------------------------

def test_probe_reads_the_streams(clips):
    info = probe(clips["av"])
    assert (info.width, info.height, info.fps, info.frame_count) == (W, H, 24.0, N)
    assert info.duration == pytest.approx(SECONDS, abs=0.05)
    assert (info.has_audio, info.audio_sample_rate, info.audio_channels) == (True, RATE, 2)
    silent = probe(clips["silent"])
    assert (silent.has_audio, silent.audio_sample_rate, silent.audio_channels) == (False, 0, 0)


def test_not_a_video_is_a_decode_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"<html>expired link</html>" * 20)
    with pytest.raises(DecodeError, match="junk.mp4"):
        probe(junk)
    with pytest.raises(DecodeError):
        decode_video(junk)


# --- full decode ---------------------------------------------------------------------------

def test_default_returns_every_frame_in_order_as_comfy_image(clips):
    out = decode_video(clips["av"])
    frames = out.frames
    assert frames.shape == (N, H, W, 3) and frames.dtype == torch.float32 and frames.is_contiguous()
    assert indices(frames) == list(range(N))
    assert float(frames.min()) >= 0.0 and float(frames.max()) == 1.0  # white blocks are exactly 1.0
    assert out.fps == 24.0 and out.info.frame_count == N
    # Colours and orientation survive: compare with the picture that was encoded (H.264 is lossy).
    for i in (0, 17, N - 1):
        expected = frame_pixels(i, W, H).astype(np.float32) / 255.0
        assert np.abs(frames[i].numpy() - expected).mean() < 0.03
    wave = out.audio["waveform"]
    assert out.audio["sample_rate"] == RATE and wave.dtype == torch.float32
    assert wave.shape == (1, 2, int(SECONDS * RATE))


# --- each selection option -----------------------------------------------------------------

def test_max_frames_takes_the_first_n(clips):
    out = decode_video(clips["av"], FrameSelection(max_frames=10))
    assert indices(out.frames) == list(range(10)) and out.fps == 24.0
    assert out.audio["waveform"].shape[-1] == round(10 / 24 * RATE)
    assert decode_video(clips["av"], FrameSelection(max_frames=500)).frames.shape[0] == N


def test_every_nth_keeps_every_nth_frame_and_reports_its_fps(clips):
    out = decode_video(clips["av"], FrameSelection(every_nth=5))
    assert indices(out.frames) == list(range(0, N, 5))
    assert out.fps == pytest.approx(24 / 5)
    # 10 frames at 4.8 fps play 2.083 s: the audio is that long, silent past the clip's end.
    wave = out.audio["waveform"]
    assert wave.shape[-1] == round(10 / 4.8 * RATE)
    assert wave[..., int(2.01 * RATE):].abs().max() == 0.0


def test_target_fps_picks_frames_on_the_output_clock(clips):
    out = decode_video(clips["av"], FrameSelection(target_fps=10))
    got = indices(out.frames)
    assert out.fps == 10.0 and len(got) == 20
    assert got == [int(np.ceil(j * 24 / 10 - 1e-9)) for j in range(20)]  # first frame at or after j/10 s
    same = decode_video(clips["av"], FrameSelection(target_fps=12))
    assert indices(same.frames) == list(range(0, N, 2)) and same.fps == 12.0
    # Never above the source: asking for 60 fps gives every frame at 24.
    fast = decode_video(clips["av"], FrameSelection(target_fps=60), want_audio=False)
    assert indices(fast.frames) == list(range(N)) and fast.fps == 24.0


@pytest.mark.parametrize("start, first", [(0.5, 12), (1.0, 24), (1.01, 25), (0.02, 1)])
def test_start_seconds_skips_to_the_first_frame_at_or_after_it(clips, start, first):
    out = decode_video(clips["av"], FrameSelection(start_seconds=start), want_audio=False)
    assert indices(out.frames) == list(range(first, N))


def test_max_side_shrinks_keeping_aspect(clips):
    out = decode_video(clips["av"], FrameSelection(max_side=160), want_audio=False)
    assert out.frames.shape == (N, 120, 160, 3)
    assert indices(out.frames) == list(range(N))
    tall = decode_video(clips["portrait"], FrameSelection(max_side=100), want_audio=False)
    assert tall.frames.shape[1:] == (100, 75, 3)
    # Never enlarged.
    assert decode_video(clips["av"], FrameSelection(max_side=4000), want_audio=False).frames.shape[1:] == (H, W, 3)


def test_options_combine(clips):
    sel = FrameSelection(start_seconds=0.5, every_nth=3, max_frames=5, max_side=160)
    out = decode_video(clips["av"], sel)
    assert indices(out.frames) == [12, 15, 18, 21, 24]
    assert out.frames.shape == (5, 120, 160, 3) and out.fps == 8.0
    assert out.audio["waveform"].shape[-1] == round(5 / 8 * RATE)
    both = decode_video(clips["av"], FrameSelection(start_seconds=1.0, target_fps=6, max_frames=3), want_audio=False)
    assert indices(both.frames) == [24, 28, 32] and both.fps == 6.0


# --- audio ---------------------------------------------------------------------------------

def envelope(wave: torch.Tensor, rate: int, window: float = 0.05) -> np.ndarray:
    """Peak level per window (a 440 Hz tone has 22 cycles in 50 ms)."""
    mono = wave[0, 0].numpy()
    step = int(window * rate)
    return np.array([np.abs(mono[i:i + step]).max() for i in range(0, len(mono) - step + 1, step)])


def test_audio_starts_at_start_seconds_and_covers_the_frames(clips):
    start = 1.0
    out = decode_video(clips["av"], FrameSelection(start_seconds=start, max_frames=12))
    wave = out.audio["waveform"]
    assert wave.shape == (1, 2, round(12 / 24 * RATE))  # 0.5 s
    env = envelope(wave, RATE)
    expected = [audio_amplitude_at(start + (k + 1) * 0.05, SECONDS) for k in range(len(env))]
    assert np.allclose(env, expected, atol=0.03), (env, expected)
    # The same span read from the full decode lines up sample for sample (AAC is lossy, so loosely).
    full = decode_video(clips["av"], want_frames=False).audio["waveform"]
    lo = int(start * RATE)
    assert torch.allclose(wave, full[..., lo:lo + wave.shape[-1]], atol=1e-4)


def test_no_audio_track_gives_silence_as_long_as_the_frames(clips):
    out = decode_video(clips["silent"], FrameSelection(start_seconds=0.5, every_nth=2))
    n = out.frames.shape[0]
    assert n == 18 and out.fps == 12.0
    audio = out.audio
    assert audio["sample_rate"] == video.SILENT_SAMPLE_RATE
    assert audio["waveform"].shape == (1, video.SILENT_CHANNELS, round(n / 12 * video.SILENT_SAMPLE_RATE))
    assert audio["waveform"].abs().max() == 0.0


# --- unlinked outputs ----------------------------------------------------------------------

def test_want_frames_false_never_decodes_a_video_packet(clips, tmp_path):
    # Every video packet of this copy is garbage: any attempt to decode one fails.
    broken = corrupt(clips["av"], tmp_path / "broken_video.mp4", "video")
    with pytest.raises(DecodeError):
        decode_video(broken, want_audio=False)
    out = decode_video(broken, FrameSelection(start_seconds=0.5), want_frames=False)
    reference = decode_video(clips["av"], FrameSelection(start_seconds=0.5))
    assert out.frames is None
    assert torch.equal(out.audio["waveform"], reference.audio["waveform"])


def test_want_audio_false_never_decodes_an_audio_packet(clips, tmp_path):
    broken = corrupt(clips["av"], tmp_path / "broken_audio.mp4", "audio")
    out = decode_video(broken, FrameSelection(every_nth=4), want_audio=False)
    assert out.audio is None and indices(out.frames) == list(range(0, N, 4))
    with pytest.raises(DecodeError):
        decode_video(broken, want_frames=False)


def test_nothing_wanted_returns_only_the_info(clips):
    out = decode_video(clips["av"], want_frames=False, want_audio=False)
    assert out.frames is None and out.audio is None and out.info.frame_count == N and out.fps == 24.0


# --- progress and cancel -------------------------------------------------------------------

def test_progress_counts_returned_frames(clips):
    calls = []
    decode_video(clips["av"], FrameSelection(every_nth=4), want_audio=False, on_progress=lambda d, t: calls.append((d, t)))
    assert calls == [(k, 12) for k in range(1, 13)]


def test_should_stop_cancels(clips):
    seen = []

    def stop():
        seen.append(1)
        return len(seen) > 5

    with pytest.raises(DecodeCancelled):
        decode_video(clips["av"], should_stop=stop)
    assert len(seen) == 6


# --- a container that misstates its frame count ------------------------------------------------

@pytest.mark.parametrize("declared", [30, 70])
def test_wrong_frame_count_still_returns_every_frame(clips, monkeypatch, declared):
    real = video._info

    def lying(container, path):
        info = real(container, path)
        return video.VideoInfo(**{**info.__dict__, "frame_count": declared})

    monkeypatch.setattr(video, "_info", lying)
    out = decode_video(clips["av"], want_audio=False)
    assert indices(out.frames) == list(range(N))


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("max_frames", -1), ("max_frames", 2.5), ("every_nth", 0), ("every_nth", True),
    ("start_seconds", -0.1), ("start_seconds", float("nan")), ("max_side", -5), ("max_side", 8),
    ("target_fps", -1.0), ("target_fps", float("inf")),
])
def test_nonsense_selection_names_the_input(field, value):
    with pytest.raises(InputError) as err:
        FrameSelection(**{field: value}).validate()
    assert err.value.node == "CometOmniPoll" and err.value.input == field
    assert str(value) in str(err.value)


def test_every_nth_and_target_fps_together_is_refused():
    with pytest.raises(InputError, match="every_nth"):
        FrameSelection(every_nth=2, target_fps=12).validate()


def test_start_past_the_end_is_refused(clips):
    with pytest.raises(InputError) as err:
        decode_video(clips["av"], FrameSelection(start_seconds=5.0))
    assert err.value.input == "start_seconds" and "2.00 s" in str(err.value)


# --- the frames are exactly what a plain PyAV decode gives ----------------------------------

def plain_decode(path, selection: FrameSelection) -> torch.Tensor:
    """The straightforward way, one frame at a time: PyAV's own rgb24 conversion (a fresh
    swscale context per frame, no decoder threads, no seeking), then the same float scaling."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        width, height = selection.output_size(stream.codec_context.width, stream.codec_context.height)
        resized = (width, height) != (stream.codec_context.width, stream.codec_context.height)
        first, kept = selection.first_index(fps), []
        for index, frame in enumerate(container.decode(stream)):
            if index < first or not selection.keeps(index - first, fps):
                continue
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height,
                                   interpolation=video.RESIZE_FILTER if resized else None)
            kept.append(torch.from_numpy(rgb.astype(np.float32) * np.float32(1 / 255)))
            if len(kept) == selection.max_frames:
                break
    return torch.stack(kept)


@pytest.mark.parametrize("clip, selection", [
    ("av", FrameSelection()),
    ("av", FrameSelection(max_frames=7)),
    ("av", FrameSelection(every_nth=3)),
    ("av", FrameSelection(target_fps=10)),
    ("av", FrameSelection(start_seconds=0.5)),
    ("av", FrameSelection(max_side=160)),
    ("av", FrameSelection(max_side=100)),  # 100x75: odd rows, padded lines
    ("portrait", FrameSelection(max_side=100)),
    ("silent", FrameSelection(start_seconds=0.5, every_nth=3, max_frames=5, max_side=160)),
])
def test_frames_are_bit_identical_to_a_plain_decode(clips, clip, selection):
    got = decode_video(clips[clip], selection, want_audio=False).frames
    expected = plain_decode(clips[clip], selection)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert torch.equal(got, expected)


# --- no thread outlives a decode ---------------------------------------------------------------

def decode_threads() -> set:
    """The converter threads alive now (other tests' threads may come and go meanwhile)."""
    return {t for t in threading.enumerate() if t.name == "CometOmni frame converter"}


def test_cancel_leaves_no_thread_running(clips):
    seen = []
    with pytest.raises(DecodeCancelled):
        decode_video(clips["av"], should_stop=lambda: seen.append(1) or len(seen) > 20)
    assert decode_threads() == set()


def fail_filling_at(monkeypatch, frame: int) -> list:
    """Filling the tensor fails at `frame` (MemoryError). Returns a weak reference to the sink, once made."""
    real_put = video._FrameSink.put
    sinks = []

    def failing_put(self, rgb):
        if not sinks:
            sinks.append(weakref.ref(self))
        if self.count == frame:
            raise MemoryError(f"no room for frame {frame}")
        real_put(self, rgb)

    monkeypatch.setattr(video._FrameSink, "put", failing_put)
    return sinks


def test_a_failure_while_filling_the_tensor_surfaces_and_leaves_no_thread(clips, monkeypatch):
    fail_filling_at(monkeypatch, 9)
    with pytest.raises(MemoryError, match="frame 9"):
        decode_video(clips["av"], want_audio=False)
    assert decode_threads() == set()


def test_a_decode_error_midway_leaves_no_thread(clips, tmp_path):
    # The first frames decode, then the packets are garbage.
    broken = tmp_path / "half.mp4"
    data = bytearray(clips["av"].read_bytes())
    with av.open(str(clips["av"])) as container:
        spans = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size and p.pos]
    for pos, size in spans[len(spans) // 2:]:
        data[pos:pos + size] = b"\xff" * size
    broken.write_bytes(bytes(data))
    with pytest.raises(DecodeError):
        decode_video(broken, want_audio=False)
    assert decode_threads() == set()


def test_a_failure_on_the_last_frame_surfaces_too(clips, monkeypatch):
    """No later frame is put, so the error can only come out at the end of the pipeline."""
    fail_filling_at(monkeypatch, 6)
    with pytest.raises(MemoryError, match="frame 6"):
        decode_video(clips["av"], FrameSelection(max_frames=7), want_audio=False)
    assert decode_threads() == set()


def test_a_failed_decode_lets_go_of_its_tensor_at_once(clips, monkeypatch):
    """No reference cycle keeps the output alive until the garbage collector runs (a MemoryError
    is exactly when that memory is wanted back)."""
    sinks = fail_filling_at(monkeypatch, 9)
    gc.disable()
    try:
        try:
            decode_video(clips["av"], want_audio=False)
        except MemoryError:
            pass
        assert sinks and sinks[0]() is None
    finally:
        gc.enable()


def test_at_most_a_few_frames_wait_between_decoding_and_filling(clips, monkeypatch):
    """A slow fill (fresh memory, page faults) must hold the decoder back, not pile frames up."""
    real_put = video._FrameSink.put
    real_queue_put = video._Converter.put
    counts = {"queued": 0, "filled": 0, "most_waiting": 0}

    def slow_fill(self, rgb):
        time.sleep(0.005)
        real_put(self, rgb)
        counts["filled"] += 1

    def queue_put(self, rgb):
        real_queue_put(self, rgb)
        counts["queued"] += 1
        counts["most_waiting"] = max(counts["most_waiting"], counts["queued"] - counts["filled"])

    monkeypatch.setattr(video._FrameSink, "put", slow_fill)
    monkeypatch.setattr(video._Converter, "put", queue_put)
    frames = decode_video(clips["av"], want_audio=False).frames
    assert counts["filled"] == frames.shape[0] > video.PIPELINE_FRAMES + 1
    assert counts["most_waiting"] <= video.PIPELINE_FRAMES + 1  # queued, and one being filled
