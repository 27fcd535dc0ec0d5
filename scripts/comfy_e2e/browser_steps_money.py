"""Browser steps about money: the Submit node's price and the whole graph's (live, bypassed),
Settings › CometAPI › Spending (today's spend, a refused and a saved daily limit, a rate and its
reset), a run past the daily limit stopped before any request, a Poll cancelled mid-wait whose
task the background collector fetches while the Tasks sidebar shows it live (totals, preview
through /view, Add a Poll node, Copy id), and a Submit inside a subgraph counted in what Run bills."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

from .browser import (
    APP,
    Page,
    close_dialogs,
    command,
    read_clipboard,
    set_widget,
    settled_text,
    settled_text_of,
    show_node,
    type_into,
)
from .comfy import Comfy
from .media import video_info
from .pack import usd
from .pack_ui import (
    LIMIT_INPUT,
    LIMIT_PANEL,
    POLL,
    POLL_STATUS,
    PROMPT,
    RATES_PANEL,
    ROOM_UNDER,
    STD_RATE_INPUT,
    SUBMIT,
    SUBMIT_PRICE,
    TASKS_LIST,
    TASKS_PANEL,
    TASKS_TAB,
    open_cometapi_settings,
    open_tasks_sidebar,
    settings_json,
    task_row,
)
from .report import CheckFailed, Report

SPEND_GUARD_WORDS = "this would cross your daily limit"


async def browser_submit_price(page: Page, report: Report, nodes2: bool, shots: Path) -> None:
    """The Submit node shows what it bills and what the whole graph bills, live as widgets change."""
    await show_node(page, SUBMIT)
    template = "5 s · std ≈ $0.42\nWhole graph ≈ $0.42: 1 Submit, 1 task"  # the template: std, 5 s, 1 variation
    shown = await page.wait_for(f"__check.onScreen({SUBMIT_PRICE}) && {SUBMIT_PRICE}.innerText", 10,
                                "the price on the Submit node")
    shown = await settled_text(page, SUBMIT_PRICE, template, 5)
    await page.shot(shots / "06a_submit_price.png")
    report.check(shown == template, "browser: the Submit node shows what it bills and what the whole graph bills",
                 str(shown).replace("\n", " | "))
    if not nodes2:  # Nodes 2.0 sizes a node by its content (and shows the pack's badge under it)
        room = await page.js(f"{ROOM_UNDER}({SUBMIT}, {SUBMIT_PRICE})")
        report.check(0 <= room <= 16, "browser: the Submit node ends under its price lines (no empty room)",
                     f"{room} px between the price box and the node's bottom")
    await page.js(set_widget(SUBMIT, "variations", 4))
    await page.js(set_widget(PROMPT, "mode", "pro"))
    live = "4 × 5 s · pro ≈ $2.24\nWhole graph ≈ $2.24: 1 Submit, 4 tasks"
    shown = await settled_text(page, SUBMIT_PRICE, live, 10)
    await page.shot(shots / "06b_submit_price_live.png")
    report.check(shown == live, "browser: the price follows the widgets (variations 4, mode pro)",
                 str(shown).replace("\n", " | "))
    await page.js(f"(() => {{ {SUBMIT}.mode = 4; {APP}.canvas.setDirty(true, true); return 1; }})()")
    bypassed = "Bypassed: bills nothing (when on: 4 × 5 s · pro ≈ $2.24)\nWhole graph: no Submit will run."
    shown = await settled_text(page, SUBMIT_PRICE, bypassed, 10)
    report.check(shown == bypassed, "browser: a bypassed Submit counts for nothing in the whole graph",
                 str(shown).replace("\n", " | "))
    await page.js(f"(() => {{ {SUBMIT}.mode = 0; {APP}.canvas.setDirty(true, true); return 1; }})()")
    await page.js(set_widget(SUBMIT, "variations", 1))
    await page.js(set_widget(PROMPT, "mode", "std"))
    await settled_text(page, SUBMIT_PRICE, template, 10)


async def browser_spending_settings(page: Page, report: Report, comfy: Comfy, shots: Path) -> None:
    """Settings › CometAPI › Spending: today's spend, a refused value, a daily limit; a rate, live in
    the Submit's price, and back to the shipped table."""
    await close_dialogs(page)
    await open_cometapi_settings(page, LIMIT_INPUT)
    answer = await settings_json(comfy)
    spent = f"Spent today ≈ {usd(answer['today']['usd'])}"
    shown = await page.wait_for(f"{LIMIT_PANEL}?.innerText.includes('Spent today') && {LIMIT_PANEL}.innerText", 10,
                                "today's spend in Settings › CometAPI › Spending")
    heading = await page.js("[...__check.dialog().querySelectorAll('*')].some(e => !e.children.length "
                            "&& e.textContent.trim() === 'Spending' && __check.shown(e))")
    limit = answer["settings"]["daily_limit_usd"]  # a fresh install: the default daily limit
    report.check(heading and limit == answer["defaults"]["daily_limit_usd"] > 0
                 and f"{spent} · {usd(answer['today']['left_usd'])} left of {usd(limit)}" in shown,
                 "browser: Settings › CometAPI › Spending shows today's spend, as the journal counts it, and the "
                 "default daily limit", f"{shown.strip()!r} (server: {answer['today']}, limit {limit})")
    await type_into(page, LIMIT_INPUT, "-1")
    refused = await page.wait_for(f"{LIMIT_PANEL}.innerText.includes('Nothing was saved') && {LIMIT_PANEL}.innerText",
                                  10, "the server's answer to a negative limit")
    stored = (await settings_json(comfy))["settings"]["daily_limit_usd"]
    report.check("daily_limit_usd" in refused and stored == limit,
                 "browser: a limit the server refuses shows its reason next to the field, nothing saved",
                 refused.strip().splitlines()[-1])
    await type_into(page, LIMIT_INPUT, "0.5")
    saved = await page.wait_for(f"{LIMIT_PANEL}.innerText.includes('left of $0.50') && {LIMIT_PANEL}.innerText", 10,
                                "the saved daily limit")
    stored = (await settings_json(comfy))["settings"]["daily_limit_usd"]
    report.check(stored == 0.5, "browser: a daily limit typed in Settings › CometAPI › Spending is saved on the server",
                 f"{saved.strip()!r}; server: {stored}")
    await type_into(page, STD_RATE_INPUT, "0.1")
    repriced = await settled_text(page, SUBMIT_PRICE, "5 s · std ≈ $0.50\nWhole graph ≈ $0.50: 1 Submit, 1 task", 10)
    rates = (await settings_json(comfy))["settings"]["rates"]
    await page.shot(shots / "12_settings_spending.png")
    report.check(rates["std"] == 0.1 and str(repriced).startswith("5 s · std ≈ $0.50"),
                 "browser: a rate changed in Settings reprices the Submit at once",
                 f"std rate {rates['std']}; Submit: {str(repriced).splitlines()[0] if repriced else repriced}")
    await page.click(f"__check.named({RATES_PANEL}, 'Reset to the shipped rates')")
    back = await settled_text(page, SUBMIT_PRICE, "5 s · std ≈ $0.42\nWhole graph ≈ $0.42: 1 Submit, 1 task", 10)
    answer = await settings_json(comfy)
    source = await page.js(f"{RATES_PANEL}.innerText")
    report.check(answer["settings"]["rates"] == answer["defaults"]["rates"] and str(back).startswith("5 s · std ≈ $0.42")
                 and answer["rates_source"] in source,
                 "browser: Reset to the shipped rates restores them; the panel names their source",
                 f"Submit: {str(back).splitlines()[0] if back else back}")
    await close_dialogs(page)


async def browser_spend_guard(page: Page, report: Report, comfy: Comfy, fake, shots: Path) -> None:
    """A new generation that would cross the daily limit stops with the guard's words, before any request."""
    created = fake.created_count
    posts = sum(1 for r in fake.requests if r.method == "POST")
    await page.js(set_widget(SUBMIT, "seed", 1))  # a new generation: the one already made cost nothing again
    await page.click("__check.named(document, 'Run')")
    said = await page.wait_for(f"(() => {{ const t = document.body.innerText;"
                               f" return t.includes({json.dumps(SPEND_GUARD_WORDS)}) && t; }})()", 60,
                               "the spend guard's message")
    await asyncio.sleep(0.5)
    await page.shot(shots / "13_spend_guard.png")
    sentence = next((line for line in said.splitlines() if SPEND_GUARD_WORDS in line), "")
    report.check("Settings › CometAPI › Spending" in sentence and "$0.50" in sentence and "Nothing was sent" in sentence,
                 "browser: a run past the daily limit is stopped with a message saying where to change it",
                 sentence[:400])
    report.check(fake.created_count == created and sum(1 for r in fake.requests if r.method == "POST") == posts,
                 "browser: the stopped run sent no creation request",
                 f"{fake.created_count - created} tasks created, "
                 f"{sum(1 for r in fake.requests if r.method == 'POST') - posts} POSTs")
    await close_dialogs(page)
    await page.js(f"(() => {{ const t = {APP}.extensionManager.toast; (t.removeAll || t.dismissAll)?.call(t); return 1; }})()")


async def browser_cancel_poll(page: Page, report: Report, comfy: Comfy, fake, shots: Path) -> str:
    """A new task whose Poll is cancelled while it waits: the paid task is left for the collector."""
    await comfy.text("POST", "/cometapi_omni/settings", json={"daily_limit_usd": 0})  # the user lifts the limit
    fake.processing_seconds = 3600  # it runs until finish() below
    before = set(fake.tasks)
    await page.js(set_widget(SUBMIT, "seed", 2))
    await show_node(page, POLL)
    await page.click("__check.named(document, 'Run')")
    if not await asyncio.to_thread(fake.wait_until, lambda: len(fake.tasks) > len(before), 60):
        raise CheckFailed("the run made no task")
    task_id = (set(fake.tasks) - before).pop()
    await page.wait_for(f"{POLL_STATUS}.startsWith('processing')", 60, "the Poll waiting for the new task")
    await page.js(command("Comfy.Interrupt"))
    deadline, queue = time.monotonic() + 20, {}
    while time.monotonic() < deadline:
        queue = json.loads((await comfy.text("GET", "/queue"))[1])
        if not queue.get("queue_running"):
            break
        await asyncio.sleep(0.2)
    rows = json.loads((await comfy.text("GET", "/cometapi_omni/tasks?offset=0&limit=5"))[1])["tasks"]
    row = next((r for r in rows if r["task_id"] == task_id), {})
    await page.shot(shots / "14_poll_cancelled.png")
    report.check(not queue.get("queue_running") and row.get("state") in ("queued", "processing") and not row.get("on_disk"),
                 "browser: Cancel stops the Poll mid-wait; the task stays journalled, not collected",
                 f"task {task_id}: {row.get('state')}, on disk {row.get('on_disk')}; status {await page.js(POLL_STATUS)!r}")
    return task_id


async def browser_tasks_sidebar(page: Page, report: Report, comfy: Comfy, fake, base: Path, key: str,
                                task_id: str, nodes2: bool, shots: Path) -> None:
    """The Tasks sidebar: the cancelled task collected in the background, live; totals as the journal
    counts them; preview through /view; Add a Poll node; Copy."""
    await close_dialogs(page)
    await open_tasks_sidebar(page)
    row = task_row(task_id)
    waiting = await page.wait_for(f"{row}?.innerText", 15, "the cancelled task in the sidebar")
    report.check("5 s · std · ≈ $0.42" in waiting and re.search(r"\b(queued|processing)\b", waiting),
                 "browser: the sidebar lists the cancelled task, not finished yet, with what it bills",
                 waiting.replace("\n", " | ")[:300])
    listed = json.loads((await comfy.text("GET", "/cometapi_omni/tasks?offset=0&limit=50"))[1])["tasks"]
    served = next((r for r in listed if r["task_id"] == task_id), {})
    badge = await page.js(f"(() => {{ const b = {row}?.querySelector('[data-model]'); "
                          "return b && [b.textContent, b.getAttribute('aria-label'), __check.shown(b)]; })()")
    report.check(badge == ["O1", "Model: Kling O1 (kling-video-o1)", True]
                 and [served.get(k) for k in ("model", "model_tag", "sound", "shots", "auto_shots")]
                 == ["kling-video-o1", "O1", False, 0, False],
                 "browser: the sidebar row says which model made the task (the O1 template's: \"O1\")",
                 f"badge {badge}; row {[served.get(k) for k in ('model', 'model_tag', 'sound', 'shots', 'auto_shots')]}")
    # Clicked again if the row was redrawn under the pointer (a live event): collecting twice is harmless.
    await page.click_until(f"__check.named({row}, 'Collect now')", f"{row}?.innerText.includes('collector')", 20,
                           "Collect now")
    handed = await page.js(f"{row}.innerText")
    report.check("fetches it now" in handed, "browser: Collect now hands the task to the background collector",
                 [line for line in handed.splitlines() if "collector" in line][0])
    fake.finish(task_id)
    collected = await page.wait_for(f"""(() => {{ const r = {row}, i = r?.querySelector('img');
        return r && /\\bsaved\\b/.test(r.innerText) && i && i.complete && i.naturalWidth > 0 && r.innerText; }})()""",
                                    60, "the cancelled task saved, with its thumbnail")
    mp4 = base / "output" / "cometapi_omni" / f"kling_{task_id}.mp4"
    report.check(mp4.is_file() and video_info(mp4)["frames"] > 0,
                 "browser: the cancelled Poll's video is collected in the background and shows up live in the sidebar",
                 f"{mp4.relative_to(base)}; row: {collected.splitlines()[-4:]}")
    await page.click(f"{row}.querySelector('button[aria-label^=\"Preview\"]')")
    preview = await page.wait_for(f"""(() => {{ const v = {row}.querySelector('video');
        return v && v.readyState >= 2 && v.videoWidth > 0 && {{src: v.getAttribute('src'),
        open: {row}.querySelector('a')?.getAttribute('href')}}; }})()""", 15, "the preview in the sidebar")
    await asyncio.sleep(0.5)
    await page.shot(shots / "15_tasks_sidebar.png")
    view = f"/view?filename=kling_{task_id}.mp4&subfolder=cometapi_omni&type=output"
    report.check(preview["src"].endswith(view) and preview["open"].endswith(view),
                 "browser: the sidebar previews and opens the video through ComfyUI's /view", preview["open"])

    answer = json.loads((await comfy.text("GET", "/cometapi_omni/tasks?offset=0&limit=50"))[1])
    totals = answer["totals"]
    shown = await page.wait_for(f"{TASKS_PANEL}?.innerText", 5, "the sidebar's text")

    def line(period, t):
        seconds = ", ".join(f"{m} {s:g} s" for m, s in sorted(t["seconds"].items())) or "0 s"
        return f"{period}: {t['tasks']} task{'' if t['tasks'] == 1 else 's'} · {seconds} · ≈ {usd(t['usd'])}"

    expected = [line("Today", totals["today"]), line("Last 30 days", totals["last_30_days"])]
    ids = {r["task_id"] for r in answer["tasks"]}
    report.check(all(e in shown for e in expected) and totals["today"]["tasks"] == len(fake.tasks) == len(ids)
                 and ids == set(fake.tasks) and "No daily limit" in shown,
                 "browser: the sidebar's totals are the journal's and match the tasks created",
                 f"{' / '.join(expected)}; {len(fake.tasks)} created, {len(ids)} journalled")
    report.check("http" not in shown and key not in shown and key[-8:] not in shown,
                 "browser: the sidebar shows no URL and no key", f"{len(shown)} characters")

    polls = f"{APP}.graph.nodes.filter(n => n.type === 'CometOmniPoll')"
    count = await page.js(f"{polls}.length")
    await page.click(f"__check.named({row}, 'Add a Poll node')")
    added = await page.wait_for(f"""(() => {{ const p = {polls}.find(n => (n.widgets.find(w => w.name === 'task_id')
        || {{}}).value === '{task_id}'); if (!p) return null; const a = {APP}.canvas.visible_area, el = __check.nodeElement(p);
        return {{count: {polls}.length, inView: p.pos[0] >= a[0] && p.pos[1] >= a[1] && p.pos[0] < a[0] + a[2]
            && p.pos[1] < a[1] + a[3], shown: el ? [...el.querySelectorAll('input, textarea')].some(i => i.value === '{task_id}')
            : null}}; }})()""", 10, "the Poll node added from the sidebar")
    await page.shot(shots / "16_poll_added_from_sidebar.png")
    report.check(added["count"] == count + 1 and added["inView"] and (added["shown"] if nodes2 else True),
                 "browser: Add a Poll node puts a Poll with the task id in the middle of the view",
                 json.dumps(added))
    await page.js(f"(() => {{ const g = {APP}.graph; g.remove({polls}.pop()); return 1; }})()")
    await page.click(f"__check.named({row}, 'Copy id')")
    copied = await read_clipboard(page)
    report.check(copied == task_id, "browser: Copy id in the sidebar puts the task id on the clipboard", repr(copied))
    await page.click(TASKS_TAB)  # closed again


async def browser_subgraph_price(page: Page, report: Report, shots: Path) -> None:
    """A Submit inside a subgraph counts in what Run bills: once the Prompt and Submit become a
    subgraph, the sidebar's 'This graph, if run' line drops it while the subgraph node is
    bypassed, and follows its variations once they are promoted to the subgraph node and set there;
    what Run would queue agrees each time."""
    await close_dialogs(page)
    if not await page.js(f"__check.shown({TASKS_LIST})"):
        await open_tasks_sidebar(page)
    line = (f"([...{TASKS_PANEL}.querySelectorAll('*')].find(e => !e.children.length "
            f"&& e.textContent.startsWith('This graph, if run')) || {{}}).textContent")
    made = await page.js(f"""(() => {{
        const graph = {APP}.graph;
        if (typeof graph.convertToSubgraph !== 'function') return 'no convertToSubgraph in this frontend';
        graph.convertToSubgraph(new Set([{PROMPT}, {SUBMIT}]));
        {APP}.canvas.setDirty(true, true);
        const inner = graph.nodes.filter(n => n.isSubgraphNode?.());
        return !graph.nodes.some(n => n.type === 'CometOmniSubmit') && inner.length === 1
          && inner[0].subgraph.nodes.some(n => n.type === 'CometOmniSubmit') ? 'ok' : 'not converted';
    }})()""")
    subgraph_node = f"{APP}.graph.nodes.find(n => n.isSubgraphNode?.())"
    inner_submit = f"{subgraph_node}.subgraph.nodes.find(n => n.type === 'CometOmniSubmit')"
    # The Submits Run would queue, as the frontend builds the prompt: their variations.
    queued_variations = (f"(async () => Object.values((await {APP}.graphToPrompt()).output)"
                         f".filter(n => n.class_type === 'CometOmniSubmit').map(n => n.inputs.variations))()")
    # Bypassed as a user does it (select, Ctrl+B's command): older frontends bypass the nodes
    # inside along with it, newer ones leave them out of the run (ComfyUI_frontend#8494).
    toggle_bypass = (f"(() => {{ {APP}.canvas.deselectAll?.(); {APP}.canvas.selectNode({subgraph_node}); "
                     f"{command('Comfy.Canvas.ToggleSelectedNodes.Bypass')}; }})()")
    await page.js(toggle_bypass)
    bypassed = await settled_text_of(page, line, "This graph, if run: no Submit will run.", 10)
    queued = await page.js(queued_variations)
    report.check(made == "ok" and bypassed == "This graph, if run: no Submit will run." and not queued,
                 "browser: a bypassed subgraph node bills none of the Submits inside it (Run would queue none)",
                 f"{made}; {bypassed!r}; Run would queue the Submit: {queued}")
    await page.js(toggle_bypass)
    if made == "ok":  # the Submit's variations promoted to the subgraph node, set there to 3
        made = await page.js(f"""(() => {{
            const node = {subgraph_node}, subgraph = node.subgraph, submit = {inner_submit};
            subgraph.addInput('variations', 'INT');
            const slots = subgraph.inputNode.slots;
            slots[slots.length - 1].connect(submit.inputs.find(i => i.name === 'variations'), submit);
            const w = (node.widgets || []).find(w => w.name === 'variations');
            if (!w) return 'no promoted variations widget';
            w.value = 3;
            w.callback?.(3);
            return 'ok';
        }})()""")
    expected = "This graph, if run ≈ $1.26: 1 Submit, 3 tasks"  # the template's 5 s · std, 3 times
    after = await settled_text_of(page, line, expected, 10)
    queued = await page.js(queued_variations)
    await page.shot(shots / "17_subgraph_price.png")
    report.check(made == "ok" and after == expected and queued == [3],
                 "browser: a Submit inside a subgraph counts in what Run bills (variations promoted to the "
                 "subgraph node and set there, live)", f"{made}; the sidebar: {after!r}; Run would queue variations {queued}")
