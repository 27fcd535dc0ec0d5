"""Where the pack is on the ComfyUI page (its nodes' widgets, its Settings panels, its Tasks
sidebar, the template browser's cards), as JavaScript expressions, and the steps that reach them;
with what the pack's own pricing says those places must show."""

from __future__ import annotations

import asyncio
import json

from .browser import APP, Page, close_dialogs, command
from .comfy import Comfy
from .pack import PACK_DIR_NAME, template

KEY_INPUT = 'document.querySelector(\'input[aria-label="CometAPI key"]\')'
KEY_PANEL = KEY_INPUT + ".closest('div').parentElement"
POLL = APP + ".graph.nodes.find(n => n.type === 'CometOmniPoll')"
PROMPT = APP + ".graph.nodes.find(n => n.type === 'CometOmniPrompt')"
SUBMIT = APP + ".graph.nodes.find(n => n.type === 'CometOmniSubmit')"
PROMPT_HELP = f"(({PROMPT}.widgets || []).find(w => w.name === 'cometapi_prompt_help') || {{}}).element"
PROMPT_TEXT = f"(({PROMPT}.widgets || []).find(w => w.name === 'prompt') || {{}}).value"
# The prompt's text box as it is on screen, in either renderer.
PROMPT_BOX = f"[...document.querySelectorAll('textarea')].find(t => __check.shown(t) && t.value === {PROMPT_TEXT})"
SUBMIT_PRICE = f"(({SUBMIT}.widgets || []).find(w => w.name === 'cometapi_submit_price') || {{}}).element"
POLL_STATUS = f"String((({POLL}.widgets || []).find(w => w.name === '$$node-text-preview') || {{}}).value || '')"
POLL_TASK_BOX = f"(({POLL}.widgets || []).find(w => w.name === 'cometapi_task_id') || {{}}).element"
TEMPLATE_CARDS = ("[...(__check.dialog()?.querySelectorAll('[data-testid^=\"template-workflow-\"]') || [])]"
                  ".map(e => e.dataset.testid.replace('template-workflow-', ''))")
# How much taller than its lines one of the pack's text boxes is drawn (px): its padding, about
# 6; below 0 its text is cut; a box stretched over the node's free room has 50 and more.
BOX_SLACK = """((box) => { const lines = [...box.children].reduce((h, c) => h + c.getBoundingClientRect().height, 0);
    return Math.round(box.getBoundingClientRect().height - lines); })"""
# How far a node's drawn bottom is below its last text box (px): empty room left in the node.
# Nodes 2.0 draws the node as an element; the canvas renderer draws it at pos + size, scaled.
ROOM_UNDER = f"""((node, box) => {{ const el = __check.nodeElement(node), c = {APP}.canvas;
    const bottom = el ? el.getBoundingClientRect().bottom : c.canvas.getBoundingClientRect().top
        + (node.pos[1] + node.size[1] + c.ds.offset[1]) * c.ds.scale;
    return Math.round(bottom - box.getBoundingClientRect().bottom); }})"""
LIMIT_INPUT = 'document.querySelector(\'input[aria-label="Daily limit in USD"]\')'
LIMIT_PANEL = LIMIT_INPUT + "?.closest('label')?.parentElement"
STD_RATE_INPUT = 'document.querySelector(\'input[aria-label^="Rate for O1 std,"]\')'
V3_RATE_INPUT = 'document.querySelector(\'input[aria-label^="Rate for v3 pro, with sound,"]\')'
RATES_PANEL = STD_RATE_INPUT + "?.parentElement?.parentElement"
TASKS_NAME = "Kling Omni tasks"  # the sidebar's button and list, in English (web/i18n: cometapiOmni.tasksTab)


def tasks_tab(name: str = TASKS_NAME) -> str:
    return f"__check.named(document, {json.dumps(name)})"


def tasks_list(name: str = TASKS_NAME) -> str:
    return f"document.querySelector('ul[aria-label=\"{name}\"]')"


def tasks_panel(name: str = TASKS_NAME) -> str:
    return tasks_list(name) + "?.parentElement?.parentElement"


TASKS_TAB, TASKS_LIST, TASKS_PANEL = tasks_tab(), tasks_list(), tasks_panel()


def task_row(task_id: str) -> str:
    return f"document.querySelector('li[data-task-id=\"{task_id}\"]')"


async def open_cometapi_settings(page: Page, shown: str, what: str = "Settings › CometAPI") -> None:
    """Settings › CometAPI, open once the element `shown` is."""
    await page.js(command("Comfy.ShowSettingsDialog"))
    await page.click_until("__check.named(__check.dialog(), 'CometAPI')", f"__check.shown({shown})", 20, what)


async def open_tasks_sidebar(page: Page, name: str = TASKS_NAME) -> None:
    """The Tasks sidebar, by its button's name in the page's language."""
    await page.click_until(tasks_tab(name), f"__check.shown({tasks_list(name)})", 20, f"the {name} sidebar button")


async def open_template(page: Page, name: str) -> None:
    """Browse Templates › cometapi-kling-omni › `name`, as a person opens it."""
    await close_dialogs(page)
    await page.js(command("Comfy.BrowseTemplates"))
    card = f"__check.dialog()?.querySelector('[data-testid=\"template-workflow-{name}\"]')"
    await page.click_until(f"__check.named(__check.dialog(), '{PACK_DIR_NAME}')", f"!!{card}", 20,
                           "the pack in Browse Templates")
    await page.click_until(card, f"!__check.dialog() && {APP}.graph.nodes.some(n => n.type === 'CometOmniSubmit') "
                           f"&& {APP}.graph.nodes.length === {len(template(name)['nodes'])}",
                           20, f"the template card {name}")
    await asyncio.sleep(1)


async def settings_json(comfy: Comfy) -> dict:
    return json.loads((await comfy.text("GET", "/cometapi_omni/settings"))[1])


async def shown_rates(comfy: Comfy):
    """The rates the server prices with now (the user's, else the shipped table)."""
    from kling_omni.pricing import Rates
    return Rates(**(await settings_json(comfy))["settings"]["rates"])


def priced(rates, mode: str, seconds: int, model: str, sound: bool = False, shots: int = 0) -> str:
    """What a Submit of one variation shows, and the whole graph with it alone, at `rates`
    (kling_omni.pricing: the table the frontend must agree with)."""
    from kling_omni.pricing import cost
    one = cost(mode, seconds, False, rates, model=model, sound=sound, shots=shots)
    return f"{one.text}\nWhole graph {one.usd}: 1 Submit, 1 task"
