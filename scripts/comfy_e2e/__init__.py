"""End-to-end check of the pack in a real ComfyUI, against the bundled fake CometAPI.

    .venv/bin/python -m scripts.comfy_e2e --comfyui /path/to/ComfyUI \
        --python /path/to/comfy/venv/bin/python [--browser | --browser-only] [--batch | --batch-only] [--keep] \
        [--front-end-root DIR/comfyui_frontend_package/static] [--nodes2 on|off] [--faults | --faults-only] \
        [--v3 | --v3-only] [--languages [zh,ja,ko] | --languages-only [zh,ja,ko]]

(`scripts/comfyui_check.py` with the same arguments launches the same.) Prints PASS/FAIL per
check and a summary; exit status 0 only when everything passed. Every wait is bounded; every
process it starts is stopped on exit.

Each run starts a ComfyUI of its own on a temp base directory (--base-directory) with a COPY of
the pack in custom_nodes (a copy, not a symlink: ComfyUI 0.3.x has no system-user directory, so
the pack keeps its key file and job journal in <pack>/data, which must not be the developer's
clone) and a test PNG input/example.png. The runs, in order (each ends by checking that the key
string appears nowhere: history, every file under the base directory including MP4/PNG metadata,
the ComfyUI log, except the pack's key file):

- env_key_run (default): COMETAPI_KEY in ComfyUI's environment; /object_info, every template,
  the core nodes downstream of Poll, two Polls at once, frames linked after a run;
- stored_key_run (default): no COMETAPI_KEY; the key POSTed to the pack's route, tested, used;
- browser_run (--browser, --browser-only): the real frontend in headless Chromium
  over the DevTools protocol, from the first key typed into Settings to the Tasks sidebar, the
  prices, Kling 3.0 and old workflows;
- faults_run (--faults, --faults-only): file hosts that stream, break or cut, 2xx and 429
  creations, a deleted journal, cross-site writes and a foreign page's paid /prompt and /ws;
- batch_run (--batch, --batch-only): variations and a prompt list against an account that
  allows 3 tasks at once;
- v3_run (--v3, --v3-only): Kling 3.0 against a fake whose clips follow the request: 12 s pro
  with sound (288 frames at 1080p, a 12 s sound), a 3-shot storyboard frame by frame, auto
  shots, every refused combination, a route without v3, workflows and API prompts from before
  the model choice, and the upgrade from the previous version of the pack with its paid task;
- languages_run (--languages, --languages-only; zh by default, or a list): in the real frontend,
  a v3 task run in English, then Comfy.Locale switched to each language and back to English:
  the node library, the Submit's help page with its picture, Settings › CometAPI, the price
  line, the Prompt's duration input, the Poll's task id line and the Tasks sidebar read in it,
  with no word of the other languages left (the words come from the pack's own tables).

The --*-only flags combine: each adds its run and leaves out the default ones.

Frontends: ComfyUI's bundled one, or any other with --front-end-root (`pip install --no-deps
--target DIR comfyui-frontend-package==X`); --nodes2 turns Nodes 2.0 (Vue-rendered nodes) on or
off before the browser steps. The browser steps find elements by role and visible name, so one
set of steps serves 1.27 and 1.5x, canvas and Nodes 2.0. A 1.5x frontend on an older server
asks for routes it lacks (e.g. /api/jobs): the server's age, not the pack.

Modules: report (PASS/FAIL), pack (the checkout under check), processes (fake server, ComfyUI,
free ports), comfy (workflow → API prompt, the HTTP/websocket client), media (files written),
common_checks (what every run checks), browser (Chromium and generic page steps), pack_ui (the
pack's places on the page), browser_steps_* (the browser steps by feature), one *_run module per
run, __main__ (arguments, which runs, summary).
"""
