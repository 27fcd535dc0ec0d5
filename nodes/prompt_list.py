"""CometOmniPromptList: prompts, one per line, as a list that CometOmniPrompt maps over."""

from __future__ import annotations

from ..kling_omni.errors import InputError
from ..kling_omni.rules import prompt_lines
from .runtime import CATEGORY, label

NODE = "CometOmniPromptList"


class CometOmniPromptList:
    DESCRIPTION = ("Prompts, one per line. Wire it into a Kling Omni Prompt's prompt input: that node then makes one "
                   "request per line, each checked on its own, and Submit creates `variations` tasks of each, "
                   "priced and paced as one batch. ComfyUI has no core node that outputs a list of strings.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompts",)
    OUTPUT_TOOLTIPS = ("One prompt per line, as a list: wire it into a Kling Omni Prompt's prompt input.",)
    OUTPUT_IS_LIST = (True,)  # one item per line: the nodes downstream run once per item
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompts": ("STRING", {"multiline": True, "default": "",
                                       "tooltip": "One prompt per line; blank lines are ignored. Each line is one "
                                                  "request (1 to 2500 characters; its tokens point at the refs of "
                                                  "the Prompt node it is wired into)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, prompts, unique_id=None):
        """At queue time: an empty list, and each line's characters, length and token syntax."""
        if prompts is None:  # the text comes from a link: checked when the node runs
            return True
        try:
            prompt_lines(prompts, label(NODE, unique_id))
        except InputError as exc:
            return str(exc)
        return True

    async def split(self, prompts, unique_id=None):
        return (prompt_lines(prompts, label(NODE, unique_id)),)
