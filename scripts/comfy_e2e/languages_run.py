"""The languages run (--languages, --languages-only): issue 17's "Done when" in the real frontend.
A fresh ComfyUI with COMETAPI_KEY against a fake CometAPI in this process, headless Chromium on
the bundled frontend or --front-end-root, Nodes 2.0 as --nodes2 asks. In English, as a new user:
the v3 sound template from Browse Templates, Run, until Poll is done. Then for each language asked
(zh by default; ja, ko) and back to English: Comfy.Locale switched; the pack's own texts follow at
once; the nodes' names at once on 1.27 and back to English, after a reload on 1.5x
(docs/languages.md); the node library lists the pack's nodes by their names; the Submit's help
page opens in the language, with its picture (1.27: the library's help button; 1.5x: the selected
node's Info tab); Settings › CometAPI, the Submit's price line, the Prompt's duration input, the
Poll's task id line and the Tasks sidebar read in it, without the other languages' words. What
each place must read comes from the pack's own tables (browser_steps_languages.words). No uncaught
error from the pack's scripts; the key appears in no file, history, log or browser storage.
Screenshots go to <work dir>/screenshots/languages_*."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .browser import (
    close_dialogs,
    frontend_version,
    open_page,
    set_nodes2,
    start_chromium,
    stop_chromium,
    wait_for_app,
)
from .browser_steps_languages import (
    InLanguage,
    help_page_step,
    languages_first_task,
    node_library,
    poll_step,
    price_step,
    same_as_english,
    settings_step,
    switch_language,
    tasks_step,
    words,
)
from .comfy import Comfy
from .common_checks import check_log, check_no_key, close_page_checked
from .processes import comfyui, in_process_fake_server
from .report import CheckFailed, Report


async def languages_run(args, report: Report, work: Path, key: str, languages: list[str]) -> None:
    shots = work / "screenshots"
    shots.mkdir(exist_ok=True)
    for language in languages:
        same = same_as_english(language)
        report.check(not same, f"languages: the pack's tables give {language} its own words for every place checked",
                     f"as in English: {same}" if same else "")
    sequence = [*languages, "en"]
    tables = {language: words(language) for language in sequence}
    fake = in_process_fake_server(key, processing_seconds=3)
    storage, history, page = "", "", None
    async with comfyui(args, work, "languages", fake.base_url, key) as c:
        comfy = Comfy(c.http, c.url)
        try:
            devtools = await start_chromium(args, c.http, work)
            page = await open_page(c.http, devtools, c.url + "/")
            await wait_for_app(page)
            version = await frontend_version(page)
            nodes2 = await set_nodes2(page, args.nodes2)
            report.note(f"languages run: ComfyUI at {c.url}, COMETAPI_KEY set, frontend {version}, "
                        f"Nodes 2.0 {'on' if nodes2 else 'off'}; {' → '.join(['en', *sequence])}")
            await asyncio.sleep(2)  # first-run dialogs settle
            await close_dialogs(page)
            task_id = await languages_first_task(page, report, shots)
            for index, language in enumerate(sequence, 1):
                lang = InLanguage(language, index, tables[language],
                                  [t for other, t in tables.items() if other != language], shots)
                try:
                    await switch_language(page, report, lang)
                    await node_library(page, report, lang)
                    await help_page_step(page, report, lang)
                    await settings_step(page, report, lang)
                    await price_step(page, report, lang, nodes2)
                    await poll_step(page, report, lang, task_id)
                    await tasks_step(page, report, lang, task_id)
                except CheckFailed as exc:  # the next language (at last English) starts over from the page
                    await page.shot(lang.shot("failure"))
                    report.check(False, f"{lang.tag}: the steps could go on", str(exc))
            storage, history = await close_page_checked(page, report, comfy, "languages")
        except CheckFailed:
            if page is not None:
                await page.shot(shots / "languages_99_failure.png")
            raise
        finally:
            stop_chromium()
            fake.stop()
    log = c.proc.log()
    check_log(report, log, "languages run")
    check_no_key(report, "languages run", key, c.base,
                 {"history": history, "ComfyUI log": log, "browser localStorage/sessionStorage": storage}, allowed=set())
