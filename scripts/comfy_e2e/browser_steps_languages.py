"""Browser steps in the user's language (issue 17): what each of the pack's places must read in a
language, taken from the pack's own tables (locales/, web/i18n/, web/docs/), and the steps that
switch Comfy.Locale and read the node library, a help page, Settings › CometAPI, the Submit's
price line with the Prompt's inputs, the Poll's task id line and the Tasks sidebar. Each place is
also read for the words of the other languages of the run, which must be gone."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .browser import (
    APP,
    SETTING,
    Page,
    close_dialogs,
    command,
    frontend_version,
    reload_page,
)
from .comfy import PROMPT_TIMEOUT
from .pack import V3_SOUND_TEMPLATE, help_page, locale, page_words
from .pack_ui import (
    POLL_TASK_BOX,
    PROMPT,
    ROOM_UNDER,
    SUBMIT,
    SUBMIT_PRICE,
    open_cometapi_settings,
    open_tasks_sidebar,
    open_template,
    task_row,
    tasks_panel,
    tasks_tab,
)
from .report import CheckFailed, Report

# The frontend's own words the steps click: each language's name in Settings › Comfy › Language
# (the same in every language), and 1.5x's right side panel's button and Info tab (its
# locales/<lang>/main.json: rightSidePanel.togglePanel and .info; 1.27 has no such panel).
FRONTEND_WORDS = {
    "en": {"language": "English", "panel": "Toggle properties panel", "info": "Info"},
    "zh": {"language": "中文", "panel": "开关属性面板", "info": "信息"},
    "ja": {"language": "日本語", "panel": "プロパティパネルの切り替え", "info": "情報"},
    "ko": {"language": "한국어", "panel": "속성 패널 전환", "info": "정보"},
}
# Settings › Comfy › Language: the control the setting's label names (aria-labelledby), in any language.
LANGUAGE_CONTROL = "document.querySelector('[aria-labelledby=\"Comfy.Locale-label\"]')"
HELP_NODE = "CometOmniSubmit"  # the help page opened: the node that costs money
SIDEBAR = APP + ".extensionManager.sidebarTab"
LIBRARY_TAB = "node-library"
# The node library's search box and its panel (the sidebar's column the box sits in).
LIBRARY_SEARCH = ("[...document.querySelectorAll('input[placeholder]')].find(i => __check.shown(i) "
                  "&& i.getBoundingClientRect().right < innerWidth / 3)")
LIBRARY_PANEL = (f"(() => {{ let e = {LIBRARY_SEARCH}; while (e && e.getBoundingClientRect().height < innerHeight / 2) "
                 "e = e.parentElement; return e; })()")
LIBRARY_NAMES = f"[...new Set(__check.labels({LIBRARY_PANEL}).filter(t => t.startsWith('Kling Omni ')))]"
HELP_PICTURE = """(() => { const i = [...document.querySelectorAll('img')].find(i => i.src.includes('/docs/images/'));
    return i && i.complete && i.naturalWidth > 0 && [i.getAttribute('src'), i.naturalWidth]; })()"""


def words(language: str) -> dict:
    """What the pack's places must read in `language`, from the tables the pack ships."""
    table, defs = page_words(language), locale(language, "nodeDefs")
    categories = locale(language, "main")["settingsCategories"]

    def before(key: str, placeholder: str) -> str:  # the fixed start of a text with a value in it
        return table[key].split(placeholder)[0].strip()

    return {
        "nodes": {node: d["display_name"] for node, d in defs.items()},
        "duration": defs["CometOmniPrompt"]["inputs"]["duration"]["name"],
        # The help page's first words, in bold: "**This is the node that costs money.**"
        "help": re.search(r"\*\*(.+?)\*\*", help_page(HELP_NODE, language)).group(1),
        "settings": [categories["Kling Omni Video"], categories["Spending"],
                     *(s["name"] for s in locale(language, "settings").values()),
                     before("key.status.env", "{tail}"), table["rates.reset"]],
        "price": table["price.wholeGraph"],
        "poll": before("poll.taskId", "{id}"),
        "tab": table["cometapiOmni.tasksTab"],
        "today": before("tasks.today", "{totals}"),
        "saved": table["state.saved"],
        **FRONTEND_WORDS[language],
    }


def as_list(value) -> list[str]:
    return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else [value]


def flat(language_words: dict) -> list[str]:
    """Every word above that the pack itself shows (not the frontend's own)."""
    return [w for name, value in language_words.items() if name not in FRONTEND_WORDS["en"] for w in as_list(value)]


def same_as_english(language: str) -> list[str]:
    """The words of `language` that read as in English (a table that fell back to English would
    let its places pass unseen)."""
    return [w for w, e in zip(flat(words(language)), flat(words("en"))) if w == e]


@dataclass
class InLanguage:
    """One language of the run: its words, the other languages' (which must be gone), where its
    screenshots go."""
    code: str
    index: int  # its place in the run, for the screenshots' order
    own: dict
    others: list[dict]
    shots: Path

    @property
    def tag(self) -> str:  # the start of its checks' names
        return f"languages: {self.code}"

    def shot(self, place: str) -> Path:
        return self.shots / f"languages_{self.index}_{self.code}_{place}.png"

    def leftovers(self, text: str, *places: str) -> list[str]:
        """The other languages' words of `places` found in `text` (except those that read as one of
        this language's own words do, or as part of one)."""
        mine = flat(self.own)
        theirs = {w for other in self.others for place in places for w in as_list(other[place])}
        return sorted(w for w in theirs if w in text and not any(w in m for m in mine))


async def within(page: Page, expression: str, timeout: float):
    """The expression's value once it holds within `timeout`, else None (no failure)."""
    try:
        return await page.wait_for(expression, timeout, "")
    except CheckFailed:
        return None


def follows_at_once(version: str, language: str) -> bool:
    """Whether the frontend must show the nodes' names in `language` without a reload
    (docs/languages.md): 1.27 always; 1.5x back to English. To another language 1.5x fetches the
    node definitions again while it loads that language's words: the names follow at once when
    the words came first, else on the next reload."""
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2]) or (99,)
    return language == "en" or numbers < (1, 30)


async def languages_first_task(page: Page, report: Report, shots: Path) -> str:
    """In English, as a new user: the v3 sound template from Browse Templates, Run, until Poll is
    done; a task for the Poll's task id line and the Tasks sidebar to show. Returns its id."""
    await open_template(page, V3_SOUND_TEMPLATE)
    await page.js(command("Comfy.Canvas.FitView"))
    await page.click("__check.named(document, 'Run')")
    task_id = await page.wait_for(f"{POLL_TASK_BOX}?.innerText.match(/\\d{{6,}}/)?.[0]", PROMPT_TIMEOUT,
                                  "the task id on the Poll node, once it ran")
    await asyncio.sleep(1)
    await page.shot(shots / "languages_0_en_run.png")
    report.note(f"languages: {V3_SOUND_TEMPLATE} ran in English: task {task_id}")
    return task_id


async def choose_language(page: Page, code: str, name: str) -> None:
    """Settings › Comfy › Language › `name`, as a person chooses it."""
    await close_dialogs(page)
    await page.js(command("Comfy.ShowSettingsDialog"))
    await page.click_until("__check.named(__check.dialog(), 'Comfy')", f"__check.shown({LANGUAGE_CONTROL})", 20,
                           "Settings › Comfy")
    option = f"__check.named(document, {json.dumps(name)})"
    await page.click_until(LANGUAGE_CONTROL, f"!!{option}", 10, "the Language setting's list")
    await page.click_until(option, f"{SETTING}.get('Comfy.Locale') === '{code}'", 10, f"the language {name}")
    await close_dialogs(page)


async def switch_language(page: Page, report: Report, lang: InLanguage) -> None:
    """Settings › Comfy › Language set to it: the pack's own texts follow at once; the nodes' names
    at once where the frontend does (follows_at_once), else after a reload."""
    own, version = lang.own, await frontend_version(page)
    await choose_language(page, lang.code, own["language"])
    pack_texts = f"[{SUBMIT_PRICE}?.innerText, {POLL_TASK_BOX}?.innerText]"
    followed = await within(page, f"(() => {{ const t = {pack_texts}; return t[0]?.includes({json.dumps(own['price'])}) "
                                  f"&& t[1]?.includes({json.dumps(own['poll'])}) && t; }})()", 5)
    texts = [str(t) for t in (followed or await page.js(pack_texts))]
    report.check(followed and not lang.leftovers(" ".join(texts), "price", "poll"),
                 f"{lang.tag}: the pack's own texts follow the switch at once (Submit's price line, Poll's task id line)",
                 " | ".join(t.replace("\n", " / ") for t in texts))
    title = f"LiteGraph.registered_node_types.{HELP_NODE}?.title"
    name = json.dumps(own["nodes"][HELP_NODE])
    how = "at once"
    if not await within(page, f"{title} === {name}", 15):
        await reload_page(page)
        how = "after a reload" if await within(page, f"{title} === {name}", 30) else "not even after a reload"
        await page.wait_for(f"!!{SUBMIT} && !!{PROMPT}", 15, "the workflow back after the reload")
        await page.js(command("Comfy.Canvas.FitView"))
    expected = "at once" if follows_at_once(version, lang.code) else "after a reload"
    report.check(how in ("at once", expected),
                 f"{lang.tag}: the nodes' names follow the switch (at once; on 1.5x, to another language than "
                 f"English, at the latest after a reload: docs/languages.md)", f"{how} on {version}: {await page.js(title)!r}")
    await asyncio.sleep(2)  # the frontend loads the workflow again on a change of language


async def node_library(page: Page, report: Report, lang: InLanguage) -> None:
    """The node library, searched for Kling Omni: the pack's nodes under their names in this language."""
    await close_dialogs(page)
    if await page.js(f"{SIDEBAR}.activeSidebarTabId") != LIBRARY_TAB:
        await page.js(command(f"Workspace.ToggleSidebarTab.{LIBRARY_TAB}"))
    await page.click_until(LIBRARY_SEARCH, f"document.activeElement === ({LIBRARY_SEARCH})", 10,
                           "the node library's search box")
    await page.js("(() => { document.activeElement.select(); return 1; })()")
    await page.type_text("Kling Omni")
    expected = sorted(lang.own["nodes"].values())
    complete = f"(() => {{ const n = {LIBRARY_NAMES}; return {json.dumps(expected)}.every(e => n.includes(e)) && n; }})()"
    names = await within(page, complete, 5)
    if not names:  # a library that lists the results in their folders, closed: CometAPI › Kling Omni
        for folder in ("CometAPI", "Kling Omni"):
            if not await page.holds(complete):
                await page.click(f"__check.labelled({LIBRARY_PANEL}, '{folder}')")
                await asyncio.sleep(0.7)
        names = await within(page, complete, 10)
    names = names or await page.js(LIBRARY_NAMES) or []
    await page.shot(lang.shot("node_library"))
    # ComfyUI 0.33's own Kling Omni nodes are found by the same search: only the pack's names count.
    pack_names = {*expected, *(n for other in lang.others for n in other["nodes"].values())}
    ours = sorted(n for n in names if n in pack_names)
    report.check(ours == expected, f"{lang.tag}: the node library lists the pack's nodes by their names",
                 "; ".join(ours) + (f" (and {len(names) - len(ours)} nodes of ComfyUI's own)" if len(names) > len(ours)
                                    else ""))


async def help_page_step(page: Page, report: Report, lang: InLanguage) -> None:
    """The Submit's help page, opened as a person opens it: the node library's help button where
    the library has one (1.27), else the selected node's Info tab in the right side panel (1.5x)."""
    own = lang.own
    shown = f"document.body.innerText.includes({json.dumps(own['help'])})"
    leaf = f"__check.labelled({LIBRARY_PANEL}, {json.dumps(own['nodes'][HELP_NODE])})"
    # 1.27's help button has no name of its own (a tooltip, "Learn more"): found by its class,
    # in the row of the node's name, once the pointer is over the row.
    button = (f"(() => {{ let row = {leaf}; for (let i = 0; i < 6 && row; i++, row = row.parentElement) {{"
              " const b = row.querySelector('.help-button'); if (b) return b; } return null; })()")
    point = await page.js(f"(() => {{ const e = {leaf}; if (!e) return null; const r = e.getBoundingClientRect(); "
                          "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    if point:
        await page.send("Input.dispatchMouseEvent", type="mouseMoved", x=point[0], y=point[1])
        await asyncio.sleep(0.5)
    panel, info = (f"__check.named(document, {json.dumps(own[k])})" for k in ("panel", "info"))
    if point and await page.holds(button):
        route = "the node library's help button"
        await page.click_until(button, shown, 15, "the Submit's help button in the node library")
    else:
        route = "the selected node's Info tab in the right side panel"
        await page.js(command(f"Workspace.ToggleSidebarTab.{LIBRARY_TAB}"))  # the library closed
        await page.js(f"(() => {{ {APP}.canvas.deselectAll?.(); {APP}.canvas.selectNode({SUBMIT}); return 1; }})()")
        await page.click_until(panel, f"!!{info}", 15, f"the button {own['panel']!r}")
        await page.click_until(info, shown, 15, f"the right side panel's tab {own['info']!r}")
    picture = await page.wait_for(HELP_PICTURE, 10, "the help page's picture")
    text = await page.js(f"""(() => {{ const t = document.body.innerText, at = t.indexOf({json.dumps(own['help'])});
        return t.slice(at, at + 160); }})()""")
    await page.shot(lang.shot("help_page"))
    report.check(text.startswith(own["help"]), f"{lang.tag}: the Submit's help page opens in its language, with its picture",
                 f"{route}: {text!r}; picture {picture[0]}, {picture[1]} px wide")
    if route.startswith("the selected"):
        await page.click_until(panel, f"!{info}", 10, "the right side panel closed")
    else:  # back to the list (a help page keeps its language otherwise), and the library closed
        await page.click("document.querySelector('.pi-arrow-left')?.closest('button')")
        await page.js(command(f"Workspace.ToggleSidebarTab.{LIBRARY_TAB}"))
    await page.press("Escape", 27)


async def settings_step(page: Page, report: Report, lang: InLanguage) -> None:
    """Settings › CometAPI: the settings' names, their groups and the pack's own panels."""
    own = lang.own
    await close_dialogs(page)
    await open_cometapi_settings(page, f"__check.labelled(__check.dialog(), {json.dumps(own['settings'][0])})")
    read = "__check.dialog()?.innerText || ''"
    text = await within(page, f"(() => {{ const t = {read}; return {json.dumps(own['settings'])}"
                              ".every(w => t.includes(w)) && t; })()", 10) or await page.js(read)
    await asyncio.sleep(0.5)
    await page.shot(lang.shot("settings_cometapi"))
    missing, left = [w for w in own["settings"] if w not in text], lang.leftovers(text, "settings")
    report.check(not missing and not left, f"{lang.tag}: Settings › CometAPI reads in its language",
                 (f"missing {missing}; " if missing else "") + (f"still {left}; " if left else "")
                 + text[text.find(own["settings"][0]):][:300].replace("\n", " | "))
    await close_dialogs(page)


async def price_step(page: Page, report: Report, lang: InLanguage, nodes2: bool) -> None:
    """The Submit's price line, and the Prompt's duration input by its name in this language
    (a widget label on the canvas, the node's own text in Nodes 2.0)."""
    own = lang.own
    await close_dialogs(page)
    text = await page.wait_for(f"{SUBMIT_PRICE}?.innerText", 10, "the Submit's price line")
    label = await page.js(f"""(() => {{ const p = {PROMPT}, w = p.widgets.find(w => w.name === 'duration');
        const el = __check.nodeElement(p); return {{label: w.label ?? w.name, node: el ? el.innerText : null}}; }})()""")
    await page.shot(lang.shot("price_line"))
    report.check(own["price"] in text and not lang.leftovers(text, "price"),
                 f"{lang.tag}: the Submit's price line reads in its language", text.replace("\n", " | "))
    if not nodes2:  # the lines' length changes with the language: the node follows, no empty room left
        room = await page.js(f"{ROOM_UNDER}({SUBMIT}, {SUBMIT_PRICE})")
        report.check(0 <= room <= 16, f"{lang.tag}: the Submit node ends under its price lines",
                     f"{room} px between the price box and the node's bottom")
    if nodes2:  # the label is the node's own text
        ok = own["duration"] in label["node"] and not lang.leftovers(label["node"], "duration")
    else:
        ok = label["label"] == own["duration"]
    report.check(ok, f"{lang.tag}: the Prompt's duration input is named in its language",
                 f"widget label {label['label']!r}" + (" (Nodes 2.0: in the node's text)" if nodes2 else ""))


async def poll_step(page: Page, report: Report, lang: InLanguage, task_id: str) -> None:
    text = await page.wait_for(f"{POLL_TASK_BOX}?.innerText", 10, "the Poll node's task id line")
    report.check(text.startswith(lang.own["poll"]) and task_id in text and not lang.leftovers(text, "poll"),
                 f"{lang.tag}: the Poll node's task id line reads in its language", text)


async def tasks_step(page: Page, report: Report, lang: InLanguage, task_id: str) -> None:
    """The Tasks sidebar, by its name in this language: its heading, totals and the task's row."""
    own = lang.own
    await close_dialogs(page)
    await open_tasks_sidebar(page, own["tab"])
    panel, row = tasks_panel(own["tab"]), task_row(task_id)
    text = await within(page, f"(() => {{ const t = {panel}?.innerText || ''; return t.includes({json.dumps(own['today'])}) "
                              f"&& {row}?.innerText.includes({json.dumps(own['saved'])}) && t; }})()", 15)
    text = text or await page.js(f"{panel}?.innerText || ''")
    await page.shot(lang.shot("tasks_sidebar"))
    left = lang.leftovers(text, "tab", "today")
    report.check(own["today"] in text and own["saved"] in text and not left,
                 f"{lang.tag}: the Tasks sidebar reads in its language",
                 (f"still {left}; " if left else "") + text[:300].replace("\n", " | "))
    await page.click(tasks_tab(own["tab"]))  # closed again
