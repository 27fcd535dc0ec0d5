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

