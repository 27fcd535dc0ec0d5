"""Reference nodes: each appends to the OMNI_REFS chain, in wiring order."""

from __future__ import annotations

import asyncio

from ..kling_omni.errors import InputError
from ..kling_omni.images import check_image_size, encode_image
from ..kling_omni.request import IMAGE_ROLES, REFER_TYPES, ElementRef, ImageRef, Refs, VideoRef
from ..kling_omni.rules import check_refer_type, check_role, check_video_url, parse_element_id
from .runtime import CATEGORY, label

REFS_IN = ("OMNI_REFS", {"tooltip": "References from the node before this one. Numbering follows the chain: "
                                    "the reference furthest upstream is <<<image_1>>>."})
HIDDEN = {"unique_id": "UNIQUE_ID"}


class _RefNode:
    """What every reference node shares: it takes the chain and returns it one longer."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("OMNI_REFS",)
    RETURN_NAMES = ("refs",)
    OUTPUT_TOOLTIPS = ("The chain one reference longer: wire it into the next reference node or the Prompt's refs.",)
    FUNCTION = "add"


class CometOmniImageRef(_RefNode):
    DESCRIPTION = ("Adds images to the references. Role 'reference': every image of the batch becomes "
                   "<<<image_N>>> in order. 'first_frame' / 'end_frame': one image that starts / ends the video.")
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "JPEG/PNG-encoded for upload; each side at least 300 px, "
                                               "aspect between 1:2.5 and 2.5:1. Large images are downscaled, never cropped."}),
                "role": (list(IMAGE_ROLES), {"default": "reference",
                                             "tooltip": "reference: each image of the batch becomes <<<image_N>>>. "
                                                        "first_frame / end_frame: one image that starts / ends the video."}),
            },
            "optional": {"refs": REFS_IN},
            "hidden": HIDDEN,
        }

    async def add(self, image, role, refs=None, unique_id=None):
        node = label("CometOmniImageRef", unique_id)
        check_role(role, node)
        batch, height, width = int(image.shape[0]), int(image.shape[1]), int(image.shape[2])
        if batch == 0:
            raise InputError(node, "image", "an empty batch (0 images)",
                             "connect at least one image; the batch that arrived here is empty "
                             "(e.g. a filter or a batch selection upstream that picked nothing)")
        if role != "reference" and batch != 1:
            raise InputError(node, "image", f"a batch of {batch} images",
                             f"{role} takes exactly one image; pick one with an 'Image From Batch' node")
        check_image_size(width, height, node=node, input="image")  # a batch shares one size
        # Encoding is CPU work: off the event loop so other nodes keep going.
        encoded = await asyncio.to_thread(
            lambda: [encode_image(image[i], node=node, input="image", index=i if batch > 1 else None)
                     for i in range(batch)])
        origin = f"{role} from {node}"
        new = [ImageRef(e, role, origin if batch == 1 else f"{origin}, batch image {i + 1}")
               for i, e in enumerate(encoded)]
        return ((refs or Refs()).plus(*new),)


class CometOmniElementRef(_RefNode):
    DESCRIPTION = "Adds an element from Kling's element library (custom or preset) as <<<element_N>>>."
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"element_id": ("STRING", {"default": "", "tooltip": "The element's numeric id "
                                                   "(64-bit; sent with every digit kept)."})},
            "optional": {"refs": REFS_IN},
            "hidden": HIDDEN,
        }

    async def add(self, element_id, refs=None, unique_id=None):
        node = label("CometOmniElementRef", unique_id)
        ref = ElementRef(parse_element_id(element_id, node), origin=f"element {element_id.strip()} from {node}")
        return ((refs or Refs()).plus(ref),)


class CometOmniVideoRef(_RefNode):
    DESCRIPTION = ("Adds a video by public URL as <<<video_1>>>. refer_type 'feature': a reference "
                   "(e.g. the next shot). 'base': the video to edit; the result keeps its length and frame.")
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video_url": ("STRING", {"default": "", "tooltip": "http(s) URL of an MP4/MOV, 3-10 s, 720-2160 px."}),
                "refer_type": (list(REFER_TYPES), {"default": "base",
                                                   "tooltip": "feature: a reference to follow (e.g. the shot before). "
                                                              "base: the video to edit; the result keeps its length."}),
                "keep_original_sound": ("BOOLEAN", {"default": True, "tooltip": "Keep the input video's sound in the result."}),
            },
            "optional": {"refs": REFS_IN},
            "hidden": HIDDEN,
        }

    async def add(self, video_url, refer_type, keep_original_sound, refs=None, unique_id=None):
        node = label("CometOmniVideoRef", unique_id)
        check_refer_type(refer_type, node)
        ref = VideoRef(check_video_url(video_url, node), refer_type, bool(keep_original_sound),
                       origin=f"{refer_type} video from {node}")
        return ((refs or Refs()).plus(ref),)
