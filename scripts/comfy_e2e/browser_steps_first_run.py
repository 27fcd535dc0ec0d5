"""Browser steps of a new user's first run: the key typed into Settings › CometAPI and tested, a
template opened from Browse Templates (its cards' thumbnails, the renderer asked for), the Prompt
node's token help (and a token that points at nothing), Run and the Poll node (status text, video
preview, task id, Copy), the workflow saved from the UI, the key removed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path

from .browser import APP, Page, close_dialogs, command, read_clipboard, show_node
from .comfy import PROMPT_TIMEOUT, Comfy
from .pack import PACK_DIR_NAME, template_names
from .pack_ui import (BOX_SLACK, KEY_INPUT, KEY_PANEL, POLL, POLL_TASK_BOX, PROMPT, PROMPT_BOX, PROMPT_HELP,
                      PROMPT_TEXT, TEMPLATE_CARDS, open_cometapi_settings)
from .report import CheckFailed, Report

BROWSER_TEMPLATE = "Kling O1 in a local pipeline, frames in and out"
BAD_TOKEN = "<<<image_2>>>"  # the template wires one image


async def browser_settings_key(page: Page, report: Report, comfy: Comfy, key: str, shots: Path) -> None:
    """Settings › CometAPI: type the key, Save, Test key."""
    await close_dialogs(page)
    await open_cometapi_settings(page, KEY_INPUT)
    before = await page.wait_for(f"{KEY_INPUT} && !{KEY_PANEL}.innerText.startsWith('Checking') "
                                 f"&& {KEY_PANEL}.innerText", 15, "the CometAPI key panel")
    await page.shot(shots / "02_settings_no_key.png")
    report.check("No key set" in before, "browser: Settings › CometAPI says no key is set", before.split("\n")[0])
    await page.click(KEY_INPUT)
    await page.type_text(key)
    await page.click(f"__check.named({KEY_PANEL}, 'Save')")
    saved = await page.wait_for(f"{KEY_PANEL}.innerText.includes('{key[-4:]}') && {KEY_PANEL}.innerText",
                                15, "the saved key's masked status")
    input_value = await page.js(f"{KEY_INPUT}.value")
    status = json.loads((await comfy.text("GET", "/cometapi_omni/key"))[1])
    report.check(key not in saved and input_value == "" and status.get("source") == "store",
                 "browser: the key typed in Settings is stored on the server, shown masked",
                 f"{saved.splitlines()[0]} (input cleared: {input_value == ''}; server: {status})")
    await page.click(f"__check.named({KEY_PANEL}, 'Test key')")
    tested = await page.wait_for(f"(() => {{ const t = {KEY_PANEL}.innerText; "
                                 "return !t.includes('Testing') && /accepted|✓|✗|fail/i.test(t) && t; })()",
                                 20, "the key test's answer")
    await page.shot(shots / "03_settings_key_saved_and_tested.png")
    report.check("accepted" in tested and key not in tested, "browser: Test key reports success",
                 tested.splitlines()[-1])
    settings_text = (await comfy.text("GET", "/settings"))[1]
    report.check(key not in settings_text, "browser: the key is no ComfyUI setting (GET /settings)")
    await close_dialogs(page)


async def browser_open_template(page: Page, report: Report, nodes2: bool, shots: Path) -> None:
    """Browse Templates › cometapi-kling-omni › a template."""
    expected = template_names()
    await page.js(command("Comfy.BrowseTemplates"))
    # Done when the list shows the pack's cards and only those (not the core's "All"/"Popular").
    await page.click_until(f"__check.named(__check.dialog(), '{PACK_DIR_NAME}')",
                           f"(() => {{ const c = {TEMPLATE_CARDS}; return c.length && "
                           f"c.every(n => {json.dumps(expected)}.includes(n)); }})()", 20,
                           "the pack in Browse Templates")
    cards = await page.js(TEMPLATE_CARDS)
    # The cards in view show the .jpg shipped beside each workflow (the others load when scrolled to).
    thumbs = """[...__check.dialog().querySelectorAll('[data-testid^="template-workflow-"]')].filter(__check.onScreen)
        .map(card => [...card.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 0))"""
    try:
        shown = await page.wait_for(f"(() => {{ const n = {thumbs}; return n.length && n.every(Boolean) && n; }})()",
                                    10, "the thumbnails of the cards in view")
    except CheckFailed:
        shown = await page.js(thumbs)
    await page.shot(shots / "04_browse_templates.png")
    report.check(shown and all(shown), "browser: the template cards in view show their thumbnails",
                 f"{sum(map(bool, shown or []))} of {len(shown or [])} cards in view")
    card = f"__check.dialog()?.querySelector('[data-testid=\"template-workflow-{BROWSER_TEMPLATE}\"]')"
    await page.click_until(card, f"!!{POLL} && !__check.dialog()", 20, f"the template card {BROWSER_TEMPLATE}")
    report.check(sorted(cards) == expected, "browser: Browse Templates lists the pack's templates and opens one",
                 f"{len(cards)} cards; opened {BROWSER_TEMPLATE}")
    await page.js(command("Comfy.Canvas.FitView"))
    await asyncio.sleep(1)
    await page.shot(shots / "05_template_loaded.png")
    drawn = await page.wait_for(f"""(() => {{ const nodes = {APP}.graph.nodes;
        const els = nodes.map(n => __check.nodeElement(n)).filter(Boolean).length;
        return {'els === nodes.length' if nodes2 else 'els === 0'} && `${{els}} of ${{nodes.length}} nodes are DOM elements`; }})()""",
                                10, "the nodes drawn by the renderer asked for")
    report.check(drawn, f"browser: Nodes 2.0 is {'on' if nodes2 else 'off'}: "
                        f"{'every node is a DOM element' if nodes2 else 'nodes are drawn on the canvas'}", drawn)


async def browser_prompt_help(page: Page, report: Report, shots: Path) -> None:
    """The Prompt node lists the tokens its refs provide, and flags one that points at nothing."""
    await show_node(page, PROMPT)
    helped = await page.wait_for(f"__check.onScreen({PROMPT_HELP}) && {PROMPT_HELP}.innerText", 10,
                                 "the help on the Prompt node")
    await page.shot(shots / "06_prompt_help.png")
    slack = await page.js(f"{BOX_SLACK}({PROMPT_HELP})")
    report.check("<<<image_1>>> = first_frame from" in helped and 0 <= slack <= 24,
                 "browser: the Prompt node shows which tokens its refs provide",
                 helped.replace("\n", " | ")[:300] + f" ({slack} px more than its text)")
    original = await page.js(PROMPT_TEXT)
    # Typed at the end of the prompt's text box, as a person would.
    await page.click_until(PROMPT_BOX, f"document.activeElement === ({PROMPT_BOX})", 10, "the prompt's text box")
    await page.js("(() => { const t = document.activeElement; t.setSelectionRange(t.value.length, t.value.length); return 1; })()")
    await page.type_text(" " + BAD_TOKEN)
    warned = await page.wait_for(f"{PROMPT_HELP}.innerText.includes('{BAD_TOKEN} points at nothing') "
                                 f"&& {PROMPT_HELP}.innerText", 10, f"the warning about {BAD_TOKEN}")
    await page.shot(shots / "07_prompt_token_warning.png")
    report.check(BAD_TOKEN in await page.js(PROMPT_TEXT),
                 "browser: a token that points at nothing, typed into the prompt, is flagged on the node",
                 [line for line in warned.splitlines() if BAD_TOKEN in line][0])
    await page.js("(() => { document.activeElement.select(); return 1; })()")
    await page.type_text(original)
    await page.wait_for(f"{PROMPT_TEXT} === {json.dumps(original)} && !{PROMPT_HELP}.innerText.includes('points at nothing')",
                        10, "the prompt back as it was, without the warning")
    await page.press("Escape", 27)


async def browser_run_poll(page: Page, report: Report, nodes2: bool, shots: Path) -> None:
    """Run, and watch the Poll node: status text while it waits, then the video and the task id."""
    await show_node(page, POLL)
    empty = await page.wait_for(f"__check.onScreen({POLL_TASK_BOX}) "
                                f"&& [{POLL_TASK_BOX}.innerText, {BOX_SLACK}({POLL_TASK_BOX})]",
                                10, "the task id box on the Poll node")
    report.check(0 <= empty[1] <= 24, "browser: before a run the Poll node's task id box fits its one line",
                 f"{empty[0]!r}, {empty[1]} px more than its text")
    await page.click("__check.named(document, 'Run')")
    # The status text is ComfyUI's own progress-text widget: drawn on the canvas by the classic
    # renderer (so only its value can be read), a DOM element in Nodes 2.0 (so it must be on screen).
    texts, on_screen = [], set()
    shot_at = {"queued": "08_status_queued.png", "processing": "09_status_processing.png",
               "downloading": "10_status_downloading.png"}
    deadline = time.monotonic() + PROMPT_TIMEOUT
    while time.monotonic() < deadline:
        seen = await page.js(f"""(() => {{ const poll = {POLL};
            const w = (poll.widgets || []).find(w => w.name === '$$node-text-preview');
            if (!w) return null;
            const text = String(w.value), el = __check.nodeElement(poll);
            return {{text, shown: el ? el.innerText.includes(text.split('\\n')[0]) : null}}; }})()""")
        text = seen and seen["text"]
        if seen and seen["shown"]:
            on_screen.add(text.split("\n")[0])
        if text and (not texts or texts[-1] != text):
            texts.append(text)
            word = text.split(" ")[0].split("\n")[0]
            if word in shot_at:
                await page.shot(shots / shot_at.pop(word))
        if text and text.startswith("done"):
            break
        await asyncio.sleep(0.15)
    firsts = [t.split("\n")[0] for t in texts]
    # A line can change before Nodes 2.0 draws it (the first "checking" lasts a few ms): what
    # must reach the screen is the waiting and the end.
    shown = firsts if not nodes2 else [t for t in firsts if t in on_screen]
    report.check(len(shown) >= 3 and any(re.search(r"processing.* \d+ s$", t) for t in shown)
                 and firsts[-1].startswith("done") and firsts[-1] in shown,
                 "browser: the status text on the Poll node changes while it runs",
                 " | ".join(firsts)[:400] + (f"; {len(shown)} of {len(firsts)} seen in the node's DOM" if nodes2 else ""))
    preview = await page.wait_for(f"""(() => {{ const poll = {POLL};
        const v = [...document.querySelectorAll('video')].find(v => v.src.includes('subfolder=cometapi_omni'));
        if (!v || v.readyState < 2 || !v.videoWidth || !__check.onScreen(v)) return null;
        const r = v.getBoundingClientRect();
        const id = (poll.widgets.find(w => w.name === 'cometapi_task_id') || {{}}).element;
        return {{src: v.src, width: v.videoWidth, shown: [Math.round(r.width), Math.round(r.height)],
                 media: poll.previewMediaType ?? null, node: v.closest('[data-node-id]')?.dataset.nodeId ?? null,
                 poll: String(poll.id), idText: id && __check.onScreen(id) && id.innerText,
                 idHeight: id && Math.round(id.getBoundingClientRect().height), idSlack: id && {BOX_SLACK}(id)}}; }})()""",
                                  20, "the video preview on the Poll node")
    await asyncio.sleep(1)
    await page.shot(shots / "11_preview.png")
    # In Nodes 2.0 the video sits inside the Poll node's element; on the canvas it is an overlay
    # the node places by its previewMediaType.
    in_poll = preview["node"] == preview["poll"] if nodes2 else preview["media"] == "video" and preview["node"] is None
    report.check(in_poll and preview["shown"][0] > 50 and preview["shown"][1] > 50,
                 "browser: the Poll node shows the video preview",
                 f"{preview['src'].split('?')[1].split('&rand')[0]}, {preview['width']} px wide, "
                 f"drawn {preview['shown'][0]}x{preview['shown'][1]}"
                 + (f" in node #{preview['node']}" if preview["node"] else ""))
    task_id = texts[-1].split("task ")[-1] if texts else "?"
    report.check(preview["idText"] and task_id in preview["idText"] and preview["idHeight"] >= 15
                 and 0 <= preview["idSlack"] <= 24, "browser: the task id stays visible on the Poll node",
                 f"{preview['idText']!r}, {preview['idHeight']} px high, {preview['idSlack']} px more than its text")
    await page.click(f"__check.named({POLL_TASK_BOX}, 'Copy')")
    copied = await read_clipboard(page)
    report.check(copied == task_id, "browser: Copy on the Poll node puts the task id on the clipboard", repr(copied))


async def browser_remove_key(page: Page, report: Report, comfy: Comfy) -> None:
    """Settings › CometAPI › Remove saved key: the server forgets it."""
    await close_dialogs(page)
    await open_cometapi_settings(page, KEY_INPUT)
    await page.click_until(f"__check.named({KEY_PANEL}, 'Remove saved key')",
                           f"{KEY_PANEL}.innerText.includes('No key set')", 10, "Remove saved key")
    status = json.loads((await comfy.text("GET", "/cometapi_omni/key"))[1])
    report.check(not status.get("set") and not status.get("stored"),
                 "browser: Remove saved key in Settings removes it from the server", json.dumps(status))
    await close_dialogs(page)


async def browser_save(page: Page, report: Report, base: Path, key: str, name: str) -> None:
    """Save the workflow from the UI: the file has the graph and no trace of the key."""
    await page.js(command("Comfy.SaveWorkflow"))
    await page.wait_for("!!__check.dialog()?.querySelector('input')", 10, "the save prompt")
    await page.js("(() => { const i = __check.dialog().querySelector('input'); i.focus(); i.select(); return 1; })()")
    await page.type_text(name)
    await page.press("Enter", 13)
    saved_file = base / "user" / "default" / "workflows" / f"{name}.json"
    deadline, saved_text = time.monotonic() + 15, ""
    while time.monotonic() < deadline:
        # The server creates the file, then writes it: wait for a whole workflow.
        saved_text = saved_file.read_text() if saved_file.exists() else ""
        with contextlib.suppress(ValueError):
            if json.loads(saved_text).get("nodes"):
                break
        await asyncio.sleep(0.2)
    report.check("CometOmniPoll" in saved_text and key not in saved_text,
                 "browser: a workflow saved from the UI has no trace of the key",
                 f"{saved_file.relative_to(base)} ({len(saved_text)} bytes)")
