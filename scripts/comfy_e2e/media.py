"""Reading the files ComfyUI and the pack wrote: where an output entry is on disk, what a video
holds, the metadata of a PNG or MP4."""

from __future__ import annotations

import json
from pathlib import Path


def output_path(base: Path, entry: dict) -> Path:
    """Where a history output entry ({filename, subfolder, type: output}) is under the base directory."""
    return base / "output" / entry.get("subfolder", "") / entry.get("filename", "")


def video_info(path: Path) -> dict:
    import av
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            return {"frames": frames, "fps": float(video.average_rate or 0),
                    "audio": len(container.streams.audio) > 0, "metadata": dict(container.metadata)}
    except Exception:
        return {"frames": 0, "fps": 0.0, "audio": False, "metadata": {}}



def media_metadata(path: Path) -> str:
    """Metadata text of PNG/MP4 files, in case it is stored compressed."""
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image
            with Image.open(path) as image:
                return json.dumps({k: str(v) for k, v in image.info.items()})
        if path.suffix.lower() in (".mp4", ".webm", ".mov"):
            import av
            with av.open(str(path)) as container:
                return json.dumps(dict(container.metadata))
    except Exception:
        pass
    return ""



def frame_marks(path: Path) -> dict:
    """Every frame of a video decoded at its full size, one at a time: the size, the fps, and the
    (index, shot number) the fake drew in each frame (fake_cometapi.media)."""
    import av
    from fake_cometapi.media import read_index, read_shot

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        marks = []
        for frame in container.decode(video=0):
            pixels = frame.to_ndarray(format="rgb24")
            marks.append((read_index(pixels), read_shot(pixels)))
        return {"width": stream.width, "height": stream.height, "fps": float(stream.average_rate or 0),
                "marks": marks}


def image_marks(paths: list[Path]) -> list[tuple[int, int]]:
    """The (index, shot number) the fake drew in each of these saved frames, in order."""
    import numpy as np
    from PIL import Image
    from fake_cometapi.media import read_index, read_shot

    marks = []
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        marks.append((read_index(pixels), read_shot(pixels)))
    return marks


def audio_facts(path: Path) -> dict:
    """The first audio track of a file: codec, seconds (its samples over its rate), peak amplitude
    (0.0 for silence); codec None when there is no audio track."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return {"codec": None, "seconds": 0.0, "peak": 0.0}
        stream = container.streams.audio[0]
        samples, peak = 0, 0.0
        for frame in container.decode(audio=0):
            samples += frame.samples
            values = frame.to_ndarray()
            if np.issubdtype(values.dtype, np.integer):  # FLAC decodes to integers: as a fraction of full scale
                values = values / np.iinfo(values.dtype).max
            peak = max(peak, float(np.abs(values).max()) if frame.samples else 0.0)
        return {"codec": stream.codec_context.name, "seconds": samples / stream.rate, "peak": peak}
