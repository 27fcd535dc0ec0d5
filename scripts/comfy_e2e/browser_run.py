"""The browser run (--browser, --browser-only): a fresh ComfyUI without a key, against a fake
CometAPI in this process (the steps see what it was sent and end tasks when they want), and the
real frontend in headless Chromium, bundled or --front-end-root, with Nodes 2.0 as --nodes2 asks.
The steps, in order: browser_steps_first_run (key, template, token help, Run, Poll), then
browser_steps_money (prices, Spending, the spend guard, a cancelled Poll and the Tasks sidebar),
Save, a subgraph's price, browser_steps_v3 (Kling 3.0 prices, storyboard line, old workflows), the
key removed. No uncaught error from the pack's scripts; the key appears in no file, history, log,
browser storage or Chromium profile. Screenshots go to <work dir>/screenshots."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .browser import frontend_version, open_page, set_nodes2, start_chromium, stop_chromium, wait_for_app
from .browser_steps_first_run import (browser_open_template, browser_prompt_help, browser_remove_key,
                                      browser_run_poll, browser_save, browser_settings_key)
from .browser_steps_money import (browser_cancel_poll, browser_spend_guard, browser_spending_settings,
                                  browser_subgraph_price, browser_submit_price, browser_tasks_sidebar)
from .browser_steps_v3 import browser_old_workflow, browser_v3_prices, browser_v3_storyboard
from .comfy import Comfy
from .common_checks import check_log, check_no_key, close_page_checked, pack_key_file
from .processes import comfyui, in_process_fake_server
from .report import CheckFailed, Report

COLLECT_ENV = "COMETAPI_OMNI_COLLECT_SECONDS"  # kling_omni.collector.INTERVAL_ENV


async def browser_run(args, report: Report, work: Path, key: str) -> None:
    """A new user in the real frontend: key from Settings, a template from Browse Templates,
    the Submit's price, the prompt's token help, Run, the Poll node's status, preview and task id;
    Settings › CometAPI › Spending, the spend guard, a cancelled Poll collected in the background,
    the Tasks sidebar; Save."""
    shots = work / "screenshots"
    shots.mkdir(exist_ok=True)
    # Its own fake server, in this process so the steps can see what it was sent and end tasks;
    # time to watch the status change; a fresh account, so a new task.
    fake = in_process_fake_server(key, processing_seconds=6)
    storage, history, page = "", "", None
    # Its background collector looks every second: a cancelled Poll's task is collected while the page watches.
    async with comfyui(args, work, "browser", fake.base_url, None, extra_env={COLLECT_ENV: "1"}) as c:
        comfy = Comfy(c.http, c.url)
        try:
            devtools = await start_chromium(args, c.http, work)
            page = await open_page(c.http, devtools, c.url + "/")
            names = await wait_for_app(page)
            version = await frontend_version(page)
            nodes2 = await set_nodes2(page, args.nodes2)
            report.note(f"browser run: ComfyUI at {c.url}, no COMETAPI_KEY, Chromium {devtools}, "
                        f"frontend {version}, Nodes 2.0 {'on' if nodes2 else 'off'}")
            report.check(names, "browser: the frontend loaded the pack's extensions", ", ".join(names))
            await asyncio.sleep(2)  # first-run dialogs settle
            await page.shot(shots / "01_first_start.png")

            await browser_settings_key(page, report, comfy, key, shots)
            await browser_open_template(page, report, nodes2, shots)
            await browser_submit_price(page, report, nodes2, shots)
            await browser_prompt_help(page, report, shots)
            await browser_run_poll(page, report, nodes2, shots)
            await browser_spending_settings(page, report, comfy, shots)
            await browser_spend_guard(page, report, comfy, fake, shots)
            task_id = await browser_cancel_poll(page, report, comfy, fake, shots)
            await browser_tasks_sidebar(page, report, comfy, fake, c.base, key, task_id, nodes2, shots)
            await browser_save(page, report, c.base, key, "my_kling_video")
            await browser_subgraph_price(page, report, shots)
            await browser_v3_prices(page, report, comfy, nodes2, shots)
            await browser_v3_storyboard(page, report, comfy, nodes2, shots)
            await browser_old_workflow(page, report, comfy, nodes2, shots)
            await browser_remove_key(page, report, comfy)

            storage, history = await close_page_checked(page, report, comfy, "browser")
        except CheckFailed:
            if page is not None:
                await page.shot(shots / "99_failure.png")
            raise
        finally:
            stop_chromium()
            fake.stop()
    log = c.proc.log()
    check_log(report, log, "browser run", expected=("SpendLimitReached",))
    check_no_key(report, "browser run", key, c.base,
                 {"history": history, "ComfyUI log": log, "browser localStorage/sessionStorage": storage},
                 allowed={pack_key_file(c.base)})
    check_no_key(report, "browser run: Chromium profile", key, work / "chromium-profile", {}, allowed=set())
