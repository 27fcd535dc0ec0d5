"""CometOmniPrompt: the prompt and settings, validated into an OMNI_REQUEST."""

from __future__ import annotations

from ..kling_omni.request import ASPECT_RATIOS, MAX_DURATION, MIN_DURATION, MODES
from ..kling_omni.rules import build_request
from .runtime import CATEGORY


class CometOmniPrompt:
    DESCRIPTION = ("Describes the video. Refer to wired references as <<<image_1>>>, <<<element_1>>>, "
                   "<<<video_1>>> (or @image1, @element1, @video). Every rule of the API is checked here, "
                   "before anything is sent or paid.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("OMNI_REQUEST",)
    RETURN_NAMES = ("request",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "1 to 2500 characters."}),
                "mode": (list(MODES), {"default": "pro", "tooltip": "pro: 1080p. std: 720p, cheaper."}),
                "aspect_ratio": (list(ASPECT_RATIOS), {"default": "16:9",
                                 "tooltip": "Not sent when a first frame or a base video fixes the frame."}),
                "duration": ("INT", {"default": 5, "min": MIN_DURATION, "max": MAX_DURATION, "step": 1,
                                     "tooltip": "Seconds. Text-only and first-frame-only: 5 or 10. "
                                                "Ignored for a base video edit (it keeps the input's length)."}),
            },
            "optional": {"refs": ("OMNI_REFS", {"tooltip": "The end of a chain of reference nodes."})},
        }

    async def build(self, prompt, mode, aspect_ratio, duration, refs=None):
        return (build_request(prompt, mode, aspect_ratio, duration, refs),)
