"""The request model: references, shots, the Omni request, its payload and fingerprint.

Data flows one way: node widgets → references (`Refs`) and shots (`Shots`) → `OmniRequest`
→ JSON payload. Everything here is immutable, so a value ComfyUI caches can never change under it.

An O1 request's payload, and so its fingerprint, is exactly what versions before Kling 3.0
sent: the intent paid then is the intent found now. Fields only v3 takes are sent only for v3.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional, Union

from .images import EncodedImage
from .models import O1, model

MODES = ("pro", "std")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
IMAGE_ROLES = ("reference", "first_frame", "end_frame")
REFER_TYPES = ("base", "feature")
MAX_SHOTS = 6
MAX_SHOT_PROMPT_CHARS = 512
MIN_SHOT_SECONDS = 1


@dataclass(frozen=True)
class ImageRef:
    image: EncodedImage
    role: str = "reference"
    origin: str = ""  # where it came from, for messages: "CometOmniImageRef #12, batch image 2"

    def item(self) -> dict:
        entry = {"image_url": self.image.b64}
        if self.role != "reference":
            entry["type"] = self.role
        return entry


@dataclass(frozen=True)
class ElementRef:
    element_id: int
    origin: str = ""

    def item(self) -> dict:
        return {"element_id": self.element_id}  # a JSON integer: Python keeps every digit


@dataclass(frozen=True)
class VideoRef:
    url: str
    refer_type: str = "feature"
    keep_original_sound: bool = False
    origin: str = ""

    def item(self) -> dict:
        # Both are always sent: the defaults are undocumented (contract §14, 6 and 7).
        return {"video_url": self.url, "refer_type": self.refer_type,
                "keep_original_sound": "yes" if self.keep_original_sound else "no"}


Ref = Union[ImageRef, ElementRef, VideoRef]


@dataclass(frozen=True)
class Refs:
    """The OMNI_REFS socket value: references in the order they were added along the chain."""

    items: tuple = ()

    def plus(self, *new: Ref) -> "Refs":
        return Refs(self.items + tuple(new))

    @property
    def images(self) -> list:
        return [r for r in self.items if isinstance(r, ImageRef)]

    @property
    def elements(self) -> list:
        return [r for r in self.items if isinstance(r, ElementRef)]

    @property
    def videos(self) -> list:
        return [r for r in self.items if isinstance(r, VideoRef)]

    def first_frame(self) -> Optional[ImageRef]:
        return next((r for r in self.images if r.role == "first_frame"), None)

    def end_frame(self) -> Optional[ImageRef]:
        return next((r for r in self.images if r.role == "end_frame"), None)

    def base_video(self) -> Optional[VideoRef]:
        return next((v for v in self.videos if v.refer_type == "base"), None)


@dataclass(frozen=True)
class Shot:
    """One shot of a storyboard: its own prompt (normalised, as sent) and length."""

    prompt: str
    duration: int
    origin: str = ""  # "CometOmniShot #7", for messages


@dataclass(frozen=True)
class Shots:
    """The OMNI_SHOTS socket value: shots in the order they were added along the chain (shot 1 first)."""

    items: tuple = ()

    def plus(self, shot: Shot) -> "Shots":
        return Shots(self.items + (shot,))

    @property
    def seconds(self) -> int:
        return sum(s.duration for s in self.items)


@dataclass(frozen=True)
class OmniRequest:
    """The OMNI_REQUEST socket value. Build it with `rules.build_request`, which validates."""

    prompt: str  # already normalised: @image2 → <<<image_2>>>; may be empty with shots
    mode: str = "pro"
    aspect_ratio: str = "16:9"
    duration: int = 5
    refs: Refs = field(default_factory=Refs)
    model: str = O1  # the default is what a request meant before models could be chosen
    sound: bool = False  # v3: native sound
    shots: tuple = ()  # v3: the storyboard's Shot items, shot 1 first
    auto_shots: bool = False  # v3: Kling cuts the prompt into shots itself

    @property
    def sends_aspect_ratio(self) -> bool:
        # A first frame or a base video fixes the frame; the API ignores or rejects it then.
        return self.refs.first_frame() is None and self.refs.base_video() is None

    @property
    def sends_duration(self) -> bool:
        # A base edit lasts as long as its input video.
        return self.refs.base_video() is None

    @property
    def shot_type(self) -> str:
        """'customize' (our shots), 'intelligence' (Kling's) or '' (one shot)."""
        return "customize" if self.shots else "intelligence" if self.auto_shots else ""

    def payload(self, external_task_id: str = "") -> dict:
        body: dict = {"model_name": self.model, "prompt": self.prompt, "mode": self.mode}
        if self.shots and not self.prompt:
            del body["prompt"]  # Kling ignores it for customised shots; an empty one is not sent
        if self.sends_aspect_ratio:
            body["aspect_ratio"] = self.aspect_ratio
        if self.sends_duration:
            body["duration"] = str(self.duration)
        for key, refs in (("image_list", self.refs.images), ("element_list", self.refs.elements),
                          ("video_list", self.refs.videos)):
            if refs:
                body[key] = [r.item() for r in refs]
        if model(self.model).sound:
            body["sound"] = "on" if self.sound else "off"
        if self.shot_type:
            body["multi_shot"] = True
            body["shot_type"] = self.shot_type
        if self.shots:
            body["multi_prompt"] = [{"index": i, "prompt": s.prompt, "duration": str(s.duration)}
                                    for i, s in enumerate(self.shots, start=1)]
        if external_task_id:
            body["external_task_id"] = external_task_id
        return body

    def fingerprint(self) -> str:
        """A hash of what is sent, with each image replaced by the hash of its pixels."""
        body = self.payload()
        for entry, ref in zip(body.get("image_list", ()), self.refs.images):
            entry["image_url"] = "pixels-sha256:" + ref.image.source_sha256
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def summary(self) -> str:
        """One line for logs and listings (never the image data)."""
        counts = [f"{len(x)} {name}" for name, x in (("image(s)", self.refs.images),
                  ("element(s)", self.refs.elements), ("video(s)", self.refs.videos)) if x]
        refs = (" with " + ", ".join(counts)) if counts else ""
        extras = "".join(f" {x}" for x in (self.model != O1 and model(self.model).tag, self.sound and "sound",
                                            self.shots and f"{len(self.shots)} shots",
                                            self.auto_shots and "auto shots") if x)
        text = self.prompt or " | ".join(s.prompt for s in self.shots)
        return f"{self.mode}{extras} {self.duration if self.sends_duration else 'input-length'} s{refs}: {text[:60]}"
