"""The ComfyUI nodes: thin wrappers over kling_omni. Ids and sockets are fixed: workflows use them."""

from .poll import CometOmniPoll
from .prompt import CometOmniPrompt
from .refs import CometOmniElementRef, CometOmniImageRef, CometOmniVideoRef
from .submit import CometOmniSubmit
from . import bridge, routes, runtime

NODE_CLASS_MAPPINGS = {
    "CometOmniPrompt": CometOmniPrompt,
    "CometOmniImageRef": CometOmniImageRef,
    "CometOmniElementRef": CometOmniElementRef,
    "CometOmniVideoRef": CometOmniVideoRef,
    "CometOmniSubmit": CometOmniSubmit,
    "CometOmniPoll": CometOmniPoll,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CometOmniPrompt": "Kling Omni Prompt (CometAPI)",
    "CometOmniImageRef": "Kling Omni Image Reference",
    "CometOmniElementRef": "Kling Omni Element Reference",
    "CometOmniVideoRef": "Kling Omni Video Reference",
    "CometOmniSubmit": "Kling Omni Submit (paid)",
    "CometOmniPoll": "Kling Omni Poll / Collect",
}

# The key routes of the settings panel (Settings › CometAPI), when a ComfyUI server runs.
_routes = bridge.route_table()
if _routes is not None:
    routes.register(_routes, bridge.data_dir, runtime.test_key)
bridge.watch_queued_prompts()  # lets CometOmniPrompt check its tokens at queue time
