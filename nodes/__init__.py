"""The ComfyUI nodes: thin wrappers over kling_omni. Ids and sockets are fixed: workflows use them."""

from .poll import CometOmniPoll
from .prompt import CometOmniPrompt
from .prompt_list import CometOmniPromptList
from .refs import CometOmniElementRef, CometOmniImageRef, CometOmniVideoRef
from .shot import CometOmniShot
from .submit import CometOmniSubmit
from . import background, bridge, prompt_guard, routes, runtime, task_events, task_routes

NODE_CLASS_MAPPINGS = {
    "CometOmniPromptList": CometOmniPromptList,
    "CometOmniPrompt": CometOmniPrompt,
    "CometOmniShot": CometOmniShot,
    "CometOmniImageRef": CometOmniImageRef,
    "CometOmniElementRef": CometOmniElementRef,
    "CometOmniVideoRef": CometOmniVideoRef,
    "CometOmniSubmit": CometOmniSubmit,
    "CometOmniPoll": CometOmniPoll,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CometOmniPromptList": "Kling Omni Prompt List",
    "CometOmniPrompt": "Kling Omni Prompt (CometAPI)",
    "CometOmniShot": "Kling Omni Shot (storyboard)",
    "CometOmniImageRef": "Kling Omni Image Reference",
    "CometOmniElementRef": "Kling Omni Element Reference",
    "CometOmniVideoRef": "Kling Omni Video Reference",
    "CometOmniSubmit": "Kling Omni Submit (paid)",
    "CometOmniPoll": "Kling Omni Poll / Collect",
}

# When a ComfyUI server runs: the routes of the settings panel (Settings › CometAPI) and of
# the Tasks sidebar, live task events, the background collector, the guard on /prompt; and
# what the settings and --listen mean for the money, said once at start-up.
_routes = bridge.route_table()
if _routes is not None:
    routes.register(_routes, bridge.data_dir, runtime.test_key)
    task_routes.register(_routes, data_dir=bridge.data_dir, journal=runtime.journal, output_root=bridge.output_root,
                         want=background.want)
    task_events.watch_journal()  # on a shared journal, other machines' changes too (LISTEN/NOTIFY)
    runtime.say_where()
    background.start()
    # Reading the settings logs, once, any problem they have (a damaged file, an old zero limit).
    prompt_guard.start(daily_limit=runtime.settings().daily_limit_usd)
bridge.watch_queued_prompts()  # lets CometOmniPrompt check its tokens at queue time
