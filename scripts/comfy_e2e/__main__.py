"""Arguments, which runs to do, the summary: `python -m scripts.comfy_e2e --help`."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from . import __doc__ as overview
from .batch_run import batch_run
from .browser_run import browser_run
from .env_key_run import env_key_run
from .faults_run import faults_run
from .languages_run import languages_run
from .pack import LANGUAGES
from .processes import Service, start_fake_server
from .report import CheckFailed, Report
from .stored_key_run import stored_key_run
from .v3_run import v3_run


async def main_async(args) -> int:
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="comfyui-check-"))
    print(f"work directory: {work}", flush=True)
    key = "sk-check" + secrets.token_hex(16)
    try:
        fake, fake_url = start_fake_server(work, key)
        report.note(f"fake CometAPI at {fake_url}")
        if not (args.browser_only or args.faults_only or args.batch_only or args.v3_only or args.languages_only):
            await env_key_run(args, report, work, fake_url, key)
            await stored_key_run(args, report, work, fake_url, key)
        if args.browser or args.browser_only:
            await browser_run(args, report, work, key)
        if args.faults or args.faults_only:
            await faults_run(args, report, work, key)
        if args.batch or args.batch_only:
            await batch_run(args, report, work, key)
        if args.v3 or args.v3_only:
            await v3_run(args, report, work, key)
        if args.languages or args.languages_only:
            await languages_run(args, report, work, key, (args.languages or args.languages_only).split(","))
    except CheckFailed as exc:
        report.check(False, "the check could go on", str(exc))
    finally:
        Service.stop_all()
    code = report.summary()
    if args.keep or args.browser or args.browser_only or args.languages or args.languages_only:
        shots = work / "screenshots"
        print(f"kept: {work}" + (f" (screenshots in {shots})" if shots.exists() else ""))
    else:
        shutil.rmtree(work, ignore_errors=True)
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.comfy_e2e", description=overview.split("\n\n")[0])
    parser.add_argument("--comfyui", required=True, type=Path, help="the ComfyUI folder (main.py)")
    parser.add_argument("--python", required=True, help="the Python of ComfyUI's environment")
    parser.add_argument("--browser", action="store_true",
                        help="also drive the real frontend in headless Chromium (keeps the work directory)")
    parser.add_argument("--browser-only", action="store_true", help="only the browser part")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--front-end-root", type=Path,
                        help="serve this frontend (a comfyui_frontend_package/static folder) instead of the bundled one")
    parser.add_argument("--nodes2", choices=("on", "off"),
                        help="browser part: turn Nodes 2.0 (Comfy.VueNodes.Enabled) on or off first "
                             "(default: leave the frontend's own default)")
    parser.add_argument("--faults", action="store_true",
                        help="also run issue 8's faults (file hosts, 2xx and 429 creations, a deleted journal, "
                             "cross-site key writes) and issue 16's foreign pages (a cross-site paid /prompt, a "
                             "foreign /ws) in a ComfyUI of their own, started with --listen 0.0.0.0")
    parser.add_argument("--faults-only", action="store_true", help="only the faults part")
    parser.add_argument("--batch", action="store_true",
                        help="also run the batch checks: 8 and 10 variations and a prompt list against an account "
                             "that allows 3 tasks at once")
    parser.add_argument("--batch-only", action="store_true", help="only the batch checks")
    parser.add_argument("--v3", action="store_true",
                        help="also run issue 15's Kling 3.0 checks against a fake whose clips follow the request: "
                             "sound, a storyboard frame by frame, auto shots, every refused combination, a route "
                             "without v3, workflows and API prompts from before, and the upgrade from the previous "
                             "version of the pack (needs this checkout's git)")
    parser.add_argument("--v3-only", action="store_true", help="only the Kling 3.0 checks")
    parser.add_argument("--languages", nargs="?", const="zh", metavar="LANGS",
                        help="also run issue 17's language checks in the real frontend (keeps the work directory): "
                             "switched to each of LANGS (comma-separated, of " + ", ".join(LANGUAGES) + "; default "
                             "zh) and back to English, the node library, a help page, Settings › CometAPI, the price "
                             "line, the Poll's task id line and the Tasks sidebar read in each")
    parser.add_argument("--languages-only", nargs="?", const="zh", metavar="LANGS", help="only the language checks")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, outputs)")
    args = parser.parse_args(argv)
    if not (args.comfyui / "main.py").is_file():
        parser.error(f"{args.comfyui} has no main.py")
    unknown = [code for code in (args.languages or args.languages_only or "").split(",") if code
               and code not in LANGUAGES]
    if unknown:
        parser.error(f"--languages: {', '.join(unknown)}: the pack speaks {', '.join(LANGUAGES)} besides English")
    if args.front_end_root and not (args.front_end_root / "index.html").is_file():
        parser.error(f"{args.front_end_root} has no index.html (expected .../comfyui_frontend_package/static)")
    try:
        return asyncio.run(main_async(args))
    finally:
        Service.stop_all()


if __name__ == "__main__":
    sys.exit(main())
