"""Browser steps of Kling 3.0 Omni (nothing queued): the v3 templates from Browse Templates priced
before Run as the rate table says (with and without sound; a storyboard at its duration in N shots),
a v3 rate in Settings repricing them and Reset restoring every model's; O1 with sound showing what
to fix; the Prompt's shots line, and a shot's duration that makes the sum wrong flagged on the
Prompt and the Submit; a workflow saved before the model choice (4 Prompt values) opening on
kling-video-o1 at the O1 price, in the root graph, pasted, and inside a subgraph, while a Prompt
added fresh starts on kling-v3-omni."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from .browser import APP, Page, close_dialogs, set_widget, settled_text, settled_text_of, show_node, type_into, widget_value
from .comfy import Comfy
from .pack import OLD_WORKFLOW, V3_SOUND_TEMPLATE, V3_STORYBOARD_TEMPLATE, template_nodes
from .pack_ui import (PROMPT, PROMPT_HELP, RATES_PANEL, SUBMIT, SUBMIT_PRICE, V3_RATE_INPUT, open_cometapi_settings,
                      open_template, priced, settings_json, shown_rates)
from .report import Report

KEPT_ON_O1 = "Saved before the model choice: kept on kling-video-o1"


async def browser_v3_prices(page: Page, report: Report, comfy: Comfy, nodes2: bool, shots: Path) -> None:
    """The v3 sound template's price before Run, at the v3 rates with and without sound; the v3 rates
    in Settings (a group per model) reprice it; O1 with sound says what to fix instead of a price."""
    prompt, _ = template_nodes(V3_SOUND_TEMPLATE)
    text, mode, _, seconds, model, sound, _ = prompt["widgets_values"]
    await open_template(page, V3_SOUND_TEMPLATE)
    await show_node(page, SUBMIT)
    rates = await shown_rates(comfy)
    with_sound = priced(rates, mode, seconds, model, sound=True)
    shown = await settled_text(page, SUBMIT_PRICE, with_sound, 10)
    values = await page.js(f"[{widget_value(PROMPT, 'model')}, {widget_value(PROMPT, 'sound')}]")
    await page.shot(shots / "20_v3_sound_price.png")
    report.check(values == [model, True] and sound and shown == with_sound,
                 f"browser: {V3_SOUND_TEMPLATE}: the price before Run is the v3 rate with sound (Submit and whole graph)",
                 f"model {values[0]}, sound {values[1]}; shown {str(shown).replace(chr(10), ' | ')!r}")
    await page.js(set_widget(PROMPT, "sound", False))
    without = priced(rates, mode, seconds, model)
    shown = await settled_text(page, SUBMIT_PRICE, without, 10)
    report.check(shown == without, "browser: sound turned off, the price follows: the v3 rate without sound",
                 str(shown).replace("\n", " | "))
    await page.js(set_widget(PROMPT, "sound", True))
    await settled_text(page, SUBMIT_PRICE, with_sound, 10)

    # Settings › CometAPI › Spending › Rates: a group per model; a v3 rate reprices the v3 Submit.
    await open_cometapi_settings(page, V3_RATE_INPUT, "Settings › CometAPI › Spending › Rates")
    headings = await page.js(f"[...{RATES_PANEL}.querySelectorAll('[role=heading]')].filter(__check.shown)"
                             ".map(h => h.textContent)")
    await type_into(page, V3_RATE_INPUT, "0.2")
    deadline = time.monotonic() + 10
    while (changed := await shown_rates(comfy)).v3_pro_with_sound != 0.2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # saved when the server answers
    repriced = await settled_text(page, SUBMIT_PRICE, priced(changed, mode, seconds, model, sound=True), 10)
    await page.shot(shots / "21_v3_rates.png")
    report.check(headings[:2] == ["Kling O1 (kling-video-o1)", "Kling 3.0 Omni (kling-v3-omni)"]
                 and changed.v3_pro_with_sound == 0.2 and changed.pro == rates.pro
                 and repriced == priced(changed, mode, seconds, model, sound=True),
                 "browser: Settings › Spending › Rates shows a group per model; the v3 pro-with-sound rate reprices "
                 "the v3 Submit, and only it", f"groups {headings}; Submit: {str(repriced).splitlines()[0]}")
    await page.click(f"__check.named({RATES_PANEL}, 'Reset to the shipped rates')")
    back = await settled_text(page, SUBMIT_PRICE, with_sound, 10)
    answer = await settings_json(comfy)
    report.check(answer["settings"]["rates"] == answer["defaults"]["rates"] and back == with_sound,
                 "browser: Reset to the shipped rates resets the rates of every model",
                 f"{len(answer['settings']['rates'])} rates; Submit: {str(back).splitlines()[0]}")
    await close_dialogs(page)

    # O1 takes no sound: the Submit says what to fix instead of a price, the whole graph bills nothing.
    await page.js(set_widget(PROMPT, "duration", 10))  # a length O1 takes: sound is the one thing it refuses
    await page.js(set_widget(PROMPT, "model", "kling-video-o1"))
    refused = await page.wait_for(f"{SUBMIT_PRICE}.innerText.startsWith('Refused before sending') && "
                                  f"{SUBMIT_PRICE}.innerText", 10, "the refusal on the Submit")
    help_text = await page.js(f"{PROMPT_HELP}.innerText")
    report.check("kling-video-o1 makes no sound of its own: pick kling-v3-omni in model, or turn sound off" in refused
                 and "Whole graph: nothing will be sent" in refused and "makes no sound of its own" in help_text,
                 "browser: O1 with sound: the Submit and the Prompt say what to fix instead of a price",
                 refused.replace("\n", " | ")[:300])
    await page.js(set_widget(PROMPT, "model", model))
    await page.js(set_widget(PROMPT, "duration", seconds))
    await settled_text(page, SUBMIT_PRICE, with_sound, 10)


async def browser_v3_storyboard(page: Page, report: Report, comfy: Comfy, nodes2: bool, shots: Path) -> None:
    """The storyboard template: its price (its duration, in N shots), the Prompt's shots line, and a
    problem on both when a shot's duration is changed so the sum is off."""
    prompt, shot_nodes = template_nodes(V3_STORYBOARD_TEMPLATE)
    _, mode, _, seconds, model, sound, _ = prompt["widgets_values"]
    lengths = [n["widgets_values"][1] for n in shot_nodes]
    await open_template(page, V3_STORYBOARD_TEMPLATE)
    rates = await shown_rates(comfy)
    expected = priced(rates, mode, seconds, model, sound=sound, shots=len(shot_nodes))
    await show_node(page, SUBMIT)
    price = await settled_text(page, SUBMIT_PRICE, expected, 10)
    await show_node(page, PROMPT)
    line = f"{len(lengths)} shots: {' + '.join(map(str, lengths))} = {sum(lengths)} s of {seconds} s"
    helped = await settled_text_of(page, f"{PROMPT_HELP}?.innerText.split('\\n')[0]", line, 10)
    await page.shot(shots / "22_storyboard.png")
    report.check(price == expected and sum(lengths) == seconds,
                 f"browser: {V3_STORYBOARD_TEMPLATE}: the price before Run is its duration in {len(lengths)} shots at the "
                 "v3 rate (Submit and whole graph)", str(price).replace("\n", " | "))
    report.check(helped == line, "browser: the Prompt node shows its shots, their total against duration", repr(helped))

    second = shot_nodes[1]
    node = f"{APP}.graph.getNodeById({second['id']})"
    await page.js(set_widget(node, "duration", lengths[1] + 1))
    off = [*lengths[:1], lengths[1] + 1, *lengths[2:]]
    wrong = f"{len(off)} shots: {' + '.join(map(str, off))} = {sum(off)} s of {seconds} s"
    problem = f"The shots add up to {' + '.join(map(str, off))} = {sum(off)} s, but duration is {seconds} s"
    helped = await page.wait_for(f"(() => {{ const t = {PROMPT_HELP}?.innerText || ''; return t.startsWith({json.dumps(wrong)})"
                                 f" && t.includes({json.dumps(problem)}) && t; }})()", 10, "the shots' sum flagged")
    color = await page.js(f"getComputedStyle({PROMPT_HELP}.firstElementChild).color")
    refused = await settled_text_of(page, f"{SUBMIT_PRICE}?.innerText.startsWith('Refused before sending, bills nothing.')",
                                    True, 10)
    await page.shot(shots / "23_storyboard_sum_off.png")
    report.check(helped and refused is True and color != await page.js(f"getComputedStyle({PROMPT_HELP}).color"),
                 "browser: a shot's duration changed so the sum is off: the shots line turns red, says what to fix, "
                 "and the Submit bills nothing",
                 (" | ".join(l for l in helped.splitlines() if "shots" in l)[:300] if helped else "")
                 + f"; line colour {color}; Submit refused: {refused}")
    await page.js(set_widget(node, "duration", lengths[1]))
    back = await settled_text(page, SUBMIT_PRICE, expected, 10)
    report.check(back == expected, "browser: the shot's duration put back, the price is back",
                 str(back).replace("\n", " | "))


async def browser_old_workflow(page: Page, report: Report, comfy: Comfy, nodes2: bool, shots: Path) -> None:
    """A workflow saved by the version before Kling 3.0 (4 Prompt values) stays on kling-video-o1 at the O1
    price, in the root graph and inside a subgraph; a Prompt added fresh starts on kling-v3-omni."""
    old = OLD_WORKFLOW.read_text(encoding="utf-8")
    values = next(n for n in json.loads(old)["nodes"] if n["type"] == "CometOmniPrompt")["widgets_values"]
    open_file = ("(async (text, name) => {{ await {app}.handleFile(new File([text], name, {{type: 'application/json'}}));"
                 " return 1; }})").format(app=APP)
    await close_dialogs(page)
    await page.js(f"{open_file}({json.dumps(old)}, '{OLD_WORKFLOW.name}')")
    await page.wait_for(f"{APP}.graph.nodes.length === {len(json.loads(old)['nodes'])} && !!{PROMPT}", 15,
                        "the old workflow loaded")
    await show_node(page, SUBMIT)
    rates = await shown_rates(comfy)
    expected = priced(rates, values[1], values[3], "kling-video-o1")
    price = await settled_text(page, SUBMIT_PRICE, expected, 10)
    state = await page.js(f"""(async () => {{ const p = {PROMPT}, el = __check.nodeElement(p);
        const queued = Object.values((await {APP}.graphToPrompt()).output).find(n => n.class_type === 'CometOmniPrompt');
        const saved = {APP}.graph.serialize().nodes.find(n => n.type === 'CometOmniPrompt');
        return {{model: {widget_value('p', 'model')}, sound: {widget_value('p', 'sound')},
                 auto_shots: {widget_value('p', 'auto_shots')}, queued: [queued.inputs.model, queued.inputs.sound],
                 saved: saved.widgets_values, drawn: el ? el.innerText.includes('kling-video-o1') : null,
                 help: {PROMPT_HELP}?.innerText.split('\\n')[0],
                 modified: {APP}.extensionManager?.workflow?.activeWorkflow?.isModified ?? null}}; }})()""")
    await show_node(page, PROMPT)
    await page.shot(shots / "24_old_workflow.png")
    report.note(f"(the old workflow's tab counts as modified after loading: {state['modified']})")
    report.check(len(values) == 4 and state["model"] == "kling-video-o1" and state["sound"] is False
                 and state["auto_shots"] is False and state["queued"] == ["kling-video-o1", False]
                 and (state["drawn"] if nodes2 else True),
                 "browser: an old workflow (4 Prompt values) loads on kling-video-o1, no sound, no auto shots, and Run "
                 "would send that", json.dumps({k: state[k] for k in ("model", "sound", "auto_shots", "queued", "drawn")}))
    report.check(price == expected == "5 s · pro ≈ $0.56\nWhole graph ≈ $0.56: 1 Submit, 1 task"
                 and str(state["help"]).startswith(KEPT_ON_O1),
                 "browser: the old workflow shows the O1 price \"5 s · pro ≈ $0.56\", and its Prompt says why it is on O1",
                 f"{str(price).replace(chr(10), ' | ')!r}; {state['help']!r}")
    report.check(state["saved"][4:] == ["kling-video-o1", False, False],
                 "browser: saved again, the old workflow names kling-video-o1 (it stays O1 on any later load)",
                 json.dumps(state["saved"]))

    fresh = await page.js(f"""(() => {{ const n = LiteGraph.createNode('CometOmniPrompt'); {APP}.graph.add(n);
        const seen = [{widget_value('n', 'model')}, {widget_value('n', 'sound')}, {widget_value('n', 'auto_shots')}];
        {APP}.graph.remove(n); return seen; }})()""")
    report.check(fresh == ["kling-v3-omni", False, False], "browser: a Prompt node added fresh starts on kling-v3-omni",
                 json.dumps(fresh))
    # A node made from an old node's saved form as pasting and cloning make it (created, then configured).
    old_node = next(n for n in json.loads(old)["nodes"] if n["type"] == "CometOmniPrompt")
    pasted = await page.js(f"""(() => {{ const n = LiteGraph.createNode('CometOmniPrompt');
        n.configure({json.dumps({**old_node, "inputs": [], "outputs": []})}); {APP}.graph.add(n);
        const seen = [{widget_value('n', 'model')}, {widget_value('n', 'sound')}, {widget_value('n', 'auto_shots')}];
        {APP}.graph.remove(n); return seen; }})()""")
    report.check(pasted == ["kling-video-o1", False, False],
                 "browser: an old Prompt node pasted in (made from its saved form) stays on kling-video-o1",
                 json.dumps(pasted))

    # The same Prompt inside a subgraph, saved before models (as the previous version would have saved it).
    inner = await page.js(f"""(() => {{ const graph = {APP}.graph;
        if (typeof graph.convertToSubgraph !== 'function') return null;
        graph.convertToSubgraph(new Set([{PROMPT}, {SUBMIT}]));
        const data = graph.serialize();
        for (const sub of data.definitions?.subgraphs ?? []) for (const n of sub.nodes ?? []) {{
          if (n.type !== 'CometOmniPrompt') continue;
          n.widgets_values = n.widgets_values.slice(0, 4); delete n.widgets_values_named; }}
        return JSON.stringify(data); }})()""")
    if inner is None:
        report.check(False, "browser: an old Prompt inside a subgraph loads on kling-video-o1",
                     "this frontend has no convertToSubgraph")
        return
    await page.js(f"{open_file}({json.dumps(inner)}, 'saved_before_models_in_subgraph.json')")
    sub_prompt = (f"({APP}.graph.nodes.find(n => n.isSubgraphNode?.())?.subgraph.nodes"
                  ".find(n => n.type === 'CometOmniPrompt'))")
    state = await page.wait_for(f"""(async () => {{ const p = {sub_prompt}; if (!p) return null;
        const queued = Object.values((await {APP}.graphToPrompt()).output).find(n => n.class_type === 'CometOmniPrompt');
        return {{values: JSON.parse({json.dumps(inner)}).definitions.subgraphs[0].nodes
                   .find(n => n.type === 'CometOmniPrompt').widgets_values.length,
                 model: {widget_value('p', 'model')}, sound: {widget_value('p', 'sound')},
                 queued: queued && [queued.inputs.model, queued.inputs.sound]}}; }})()""", 15,
                                "the old subgraph workflow loaded")
    report.check(state["values"] == 4 and state["model"] == "kling-video-o1" and state["sound"] is False
                 and state["queued"] == ["kling-video-o1", False],
                 "browser: an old Prompt inside a subgraph loads on kling-video-o1 too (Run would send that)",
                 json.dumps(state))
