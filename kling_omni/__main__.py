"""Command line for the job journal, usable without ComfyUI.

    python -m kling_omni tasks                 list journalled tasks, what they bill, and the totals
    python -m kling_omni collect TASK_ID       wait for a task and download its MP4
    python -m kling_omni db copy --from PATH   copy a SQLite journal into the shared one (PostgreSQL)

Run from the pack's folder. The journal is in --home (default: $COMETAPI_OMNI_HOME or
~/.cometapi-omni); ComfyUI keeps its own in ComfyUI/user/__cometapi_omni/ (or the pack's
data/ folder on ComfyUI older than 0.3.76): pass that folder as --home to see its tasks.
With COMETAPI_OMNI_DATABASE_URL set, every command uses the shared journal in that database
(docs/several-machines.md); `db copy` needs it.

Every failure is one line on stderr and a non-zero exit code; COMETAPI_OMNI_DEBUG=1 shows
the traceback of an unexpected one, for a bug report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

from .client import OmniClient, base_url_from_env
from .collect import collect_video, video_path
from .credentials import ENV_VAR, default_store_dir, resolve_key
from .database import DATABASE_ENV
from .errors import OmniError, redact
from . import store
from .journal import BaseJournal as Journal
from .ledger import Totals, job_cost, recent_totals
from .models import features
from .pricing import MAX_INPUT_SECONDS, MIN_INPUT_SECONDS, RATES_SOURCE, actual_usd, money
from .settings import SETTINGS_FILE
from .store import load_settings
from .task import check_task_id

DEBUG_ENV = "COMETAPI_OMNI_DEBUG"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def list_tasks(journal: Journal, home: Path, out=sys.stdout) -> None:
    """The newest tasks with what each bills, then the totals for today and the last 30 days, at the
    rates of the settings in `home` (the pack's defaults when it has none)."""
    jobs = journal.jobs(limit=200)
    if not jobs:
        print(f"No tasks in {journal.path}", file=out)
        return
    now = time.time()
    rates = load_settings(home).rates
    settings_file = home / SETTINGS_FILE
    shared = store.is_shared(journal)
    rates_from = (f"the rates in the shared settings of {journal.path}" if shared else
                  f"the rates in {settings_file}" if settings_file.is_file() else
                  f"the pack's default rates ({RATES_SOURCE}) — change them in Settings › CometAPI")
    print(f"{'TASK ID':<22} {'STATUS':<11} {'AGE':>5}  {'MODEL':<18} {'BILLED FOR':<16} {'ESTIMATE':<15} "
          f"{'ACTUAL':>7}  {'PROMPT':<30}  " + (f"{'MACHINE':<16} " if shared else "") + "FILE", file=out)
    for job in jobs:
        cost = job_cost(job, rates)
        actual = actual_usd(job.unit_deduction, rates) if job.unit_deduction else None
        model = features(job.model, job.sound, job.shots, job.auto_shots) if job.mode else "-"
        print(f"{job.task_id or '-':<22} {job.state:<11} {_age(now - job.created_at):>5}  {model:<18} "
              f"{_billed_for(cost):<16} {cost.usd if cost else '-':<15} {money(actual) if actual is not None else '-':>7}"
              f"  {job.prompt[:30]:<30}  " + (f"{job.machine or '-':<16} " if shared else "") + _file(job, journal.machine), file=out)
    recent = recent_totals(journal, rates, now)
    print(file=out)
    print(f"Today:        {_totals(recent.today)}", file=out)
    print(f"Last 30 days: {_totals(recent.last_30_days)}", file=out)
    print(f"Amounts with ≈ are estimates at {rates_from}. ACTUAL is the charge CometAPI reported; the totals "
          f"use it where it is known and the estimate (the upper end of a range) elsewhere.", file=out)


def _file(job, here: str) -> str:
    """The saved video: its path here, or which machine's disk holds it (a shared journal)."""
    if job.video_here(here):
        return job.video_path
    return f"on {job.saved_on(here)}" if job.saved_on(here) else "-"


def _billed_for(cost) -> str:
    """'5 s · pro', '12 s · pro + sound', or '3–10 s · pro' for a base edit of unknown length: exact, not an
    estimate. (The model is in its own column.)"""
    if cost is None:
        return "-"
    length = f"{MIN_INPUT_SECONDS}–{MAX_INPUT_SECONDS} s" if cost.seconds is None else f"{cost.seconds:g} s"
    return f"{length} · {cost.mode}" + (" + sound" if cost.sound else "")


def _totals(totals: Totals) -> str:
    seconds = ", ".join(f"{mode} {value:g} s" for mode, value in sorted(totals.seconds.items())) or "0 s"
    return f"{totals.tasks} task{'' if totals.tasks == 1 else 's'} · {seconds} · ≈ {money(totals.usd)}"


def collect(task_id: str, journal: Journal, home: Path, out_dir: Path, timeout_minutes: float,
            interval: float) -> Path:
    def client():
        return OmniClient(resolve_key(home), base_url_from_env())

    shown = []

    def progress(text):
        shown.append(True)
        print(f"\r{text}", end="", flush=True)

    def status(state, elapsed):
        progress(f"{state.status:<11} {elapsed:5.0f} s")

    def downloading(done, total):
        share = f"{100 * done / total:3.0f}%" if total else f"{done / 1e6:.1f} MB"
        progress(f"downloading {share}   ")

    try:
        result = asyncio.run(collect_video(task_id, journal, client, out_dir, timeout=timeout_minutes * 60,
                                           interval=interval, on_update=status, on_download=downloading))
    finally:
        if shown:
            print()  # ends the progress line
    wanted = video_path(out_dir, task_id)
    if wanted.exists() and os.path.samefile(result.path, wanted):
        return result.path
    # Saved before, elsewhere (ComfyUI's output folder, an earlier --out): the journal keeps that
    # file; the user asked for one here, so they get a copy, and nothing is fetched again.
    print(f"Task {task_id} was saved before as {result.path}; copied it to {wanted}.", file=sys.stderr)
    wanted.parent.mkdir(parents=True, exist_ok=True)
    part = wanted.with_name(wanted.name + ".part")
    shutil.copyfile(result.path, part)
    os.replace(part, wanted)
    return wanted


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def main(argv=None) -> int:
    parser = _Parser(prog="python -m kling_omni", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="folder of the journal and key store")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tasks", help="list journalled tasks")
    grab = commands.add_parser("collect", help="wait for a task and download its MP4")
    grab.add_argument("task_id")
    grab.add_argument("--out", type=Path, default=Path("."), help="folder for the MP4 (default: here)")
    grab.add_argument("--timeout", type=float, default=30.0, help="minutes for the wait and the download (default 30)")
    grab.add_argument("--interval", type=float, default=5.0, help="seconds between status queries")
    database = commands.add_parser("db", help="the shared journal (COMETAPI_OMNI_DATABASE_URL)")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    copying = database_commands.add_parser("copy", help="copy a SQLite journal into the shared one (idempotent)")
    copying.add_argument("--from", dest="source", type=Path, required=True, help="the journal.sqlite3 to copy")
    copying.add_argument("--machine", default=None,
                         help="the machine whose disk holds its videos (default: this one, $COMETAPI_OMNI_MACHINE)")
    args = parser.parse_args(argv)

    home = args.home or default_store_dir()
    task_id = args.task_id.strip() if args.command == "collect" else ""
    try:
        if home.exists() and not home.is_dir():
            raise OmniError(f"--home {home} is a file; give the folder that holds journal.sqlite3.")
        journal = store.open_journal(home)
        if args.command == "db":
            print(copy_into(journal, args.source, args.machine))
        elif args.command == "tasks":
            list_tasks(journal, home)
        else:
            check_task_id(task_id, "python -m kling_omni collect", "TASK_ID")
            print(collect(task_id, journal, home, args.out, args.timeout, args.interval))
    except KeyboardInterrupt:
        print(f"Stopped waiting. The task keeps running: collect it later with `python -m kling_omni collect "
              f"{task_id}`." if task_id else "Stopped.", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"error: {_one_line(exc, home, task_id)}", file=sys.stderr)
        return 1
    finally:
        store.forget_journals()
    return 0


def copy_into(journal: Journal, source: Path, machine) -> str:
    """`db copy`: the SQLite journal at `source` into the shared journal."""
    if not store.is_shared(journal):
        raise OmniError(f"db copy copies into the shared journal: set {DATABASE_ENV}=postgresql://user:password@host/"
                        f"database first (docs/several-machines.md).")
    from .migrate import copy_journal
    copied = copy_journal(source, journal, machine=machine or store.machine_name())
    return copied.text(source, journal.path)


def _one_line(exc: Exception, home: Path, task_id: str) -> str:
    """The pack's own message as is; anything else named for what it is. Never a key."""
    text = str(exc)
    if not isinstance(exc, OmniError):
        text = f"unexpected {type(exc).__name__}: {text}" + (
            f" (task {task_id} is kept on CometAPI: collect it again once this is fixed)" if task_id else "")
        text += f". Set {DEBUG_ENV}=1 to see the traceback."
    try:
        key = resolve_key(home)
    except Exception:  # no key anywhere: nothing to hide but key-shaped text
        key = None
    database = store.database_url()
    from .database import secrets_of
    return " ".join(redact(text, key, os.environ.get(ENV_VAR), *(secrets_of(database) if database else ())).split())


if __name__ == "__main__":
    sys.exit(main())
