"""CometOmniShot: one shot of a Kling 3.0 storyboard, chained like references are."""

from __future__ import annotations

from ..kling_omni.models import V3
from ..kling_omni.request import MAX_SHOT_PROMPT_CHARS, MAX_SHOTS, Shots
from ..kling_omni.rules import build_shot
from .runtime import CATEGORY, label


class CometOmniShot:
    DESCRIPTION = (f"One shot of a storyboard ({V3} only): its own prompt and length. Chain up to {MAX_SHOTS} "
                   "through `shots` into a Prompt's shots input: the one furthest upstream is shot 1. Their "
                   "lengths add up to the Prompt's duration, which is what the video bills. Shot prompts may "
                   "use the Prompt's reference tokens (<<<image_1>>>, @image1, ...).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("OMNI_SHOTS",)
    RETURN_NAMES = ("shots",)
    OUTPUT_TOOLTIPS = ("The storyboard so far: wire it into the next Shot or the Prompt's shots.",)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": f"What happens in this shot: 1 to {MAX_SHOT_PROMPT_CHARS} "
                                                 "characters."}),
                "duration": ("INT", {"default": 5, "min": 1, "max": 15, "step": 1,
                                     "tooltip": "Seconds of this shot. The shots of a storyboard add up to the "
                                                "Prompt's duration (3 to 15 s)."}),
            },
            "optional": {"shots": ("OMNI_SHOTS", {"tooltip": "The shots before this one (this one comes after "
                                                             "them)."})},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    async def add(self, prompt, duration, shots=None, unique_id=None):
        shot = build_shot(prompt, duration, label("CometOmniShot", unique_id))
        return ((shots or Shots()).plus(shot),)
