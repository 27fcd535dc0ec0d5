"""What the Tasks sidebar is told about journalled tasks: a TaskRow each, and a page of them.

A row is plain data from a journal row, the user's rates and the clock: GET /cometapi_omni/tasks
answers with pages of them and GET /cometapi_omni/tasks/{task_id} with one (what the sidebar
reads after a live `cometapi_omni.task` event, which itself names only the task). It never
carries the key, the signed video URL, the base URL, the node id or the fingerprint.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Optional

from ..kling_omni.errors import redact
from ..kling_omni.journal import REJECTED, BaseJournal as Journal, Job
from ..kling_omni.ledger import EXPIRY_WARNING_DAYS, RETENTION_DAYS, job_cost, recent_totals
from ..kling_omni.models import UNNAMED, tag_of
from ..kling_omni.pricing import RATES_SOURCE, Rates, actual_usd
from ..kling_omni.settings import PackSettings
from ..kling_omni.task import ENDED, FAILED

PREFIX = "/cometapi_omni"  # routes.PREFIX (not imported: this module needs no aiohttp)
PROMPT_CHARS = 100
DAY = 86400.0
NOTHING_TO_LOSE = (FAILED, ENDED, REJECTED)  # no video will ever exist
_URL_TAIL = re.compile(r"(https?://[^\s?#'\"<>]+)[?#][^\s'\"<>]*")  # a signed URL's query string


_stamps = threading.Lock()
_last_stamp = 0.0


def read_stamp() -> float:
    """Now, as the moment a row is about to be read from the journal (TaskRow.as_of): strictly
    increasing in this process, so two reads never tie, even within one tick of a coarse clock
    or after the clock steps back."""
    global _last_stamp
    with _stamps:
        _last_stamp = max(time.time(), _last_stamp + 1e-6)
        return _last_stamp


def task_row(job: Job, rates: Rates, now: float, output_root: Path, collecting: bool, here: str = "") -> dict:
    """The TaskRow of `job`; `output_root` is the folder ComfyUI's /view serves as type=output; `here` is this
    machine's name in a shared journal ('' otherwise)."""
    cost = job_cost(job, rates)
    model = model_of(job)
    video = job.video_here(here)
    # Saved on another machine of a shared journal: not lost, and not this machine's to collect.
    saved_on = job.saved_on(here)
    age = max(0.0, (now - job.created_at) / DAY)
    at_risk = video is None and not saved_on and job.state not in NOTHING_TO_LOSE  # a paid video that is nowhere yet
    return {
        "task_id": job.task_id,
        "external_task_id": job.external_task_id,
        "state": job.state,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "prompt": job.prompt[:PROMPT_CHARS],
        "mode": job.mode if cost is not None else "",
        "seconds": job.seconds,
        "video_input": bool(job.video_input),
        # The model it was made with; a row from before models were recorded was made with O1, the only
        # one there was. A task collected by id that no Submit of ours made: nobody knows (as its mode).
        "model": model,
        "model_tag": tag_of(model) if model else "",
        "sound": bool(job.sound),
        "shots": int(job.shots or 0),  # a storyboard of that many shots of our own; 0: one shot
        "auto_shots": bool(job.auto_shots),  # Kling cut it into shots
        "label": cost.label if cost is not None else "",
        "estimate_text": cost.usd if cost is not None else "",
        "estimate_usd": cost.usd_high if cost is not None else None,
        "actual_usd": actual_usd(job.unit_deduction, rates) if job.unit_deduction else None,
        "actual_units": job.unit_deduction,
        "message": clean_message(job.message, job.base_url),
        "on_disk": video is not None,
        "file": view_file(video, output_root) if video is not None else None,
        "thumb": f"{PREFIX}/tasks/{job.task_id}/thumb" if video is not None and job.task_id else None,
        "age_days": round(age, 4),
        "expires_in_days": round(max(0.0, RETENTION_DAYS - age), 4) if at_risk else None,
        "expiring": at_risk and age >= EXPIRY_WARNING_DAYS,
        "expired": at_risk and age >= RETENTION_DAYS,
        "collecting": bool(collecting),
        # A shared journal's machines ('' on a journal of this machine alone): the one that made it, and the
        # one whose disk holds its video when that is not this one.
        "machine": job.machine,
        "saved_on": saved_on,
        "collectable": at_risk,  # no video here yet, and one may come: the sidebar offers Collect now
        # When the journal was read for it (taken before the read): of two rows of one task the
        # sidebar keeps the later, so a page read before a live event cannot undo it on arrival.
        "as_of": now,
    }


def model_of(job: Job) -> str:
    """The model name a task was made with: its journalled one, O1 for a row from before models were
    recorded, "" when nothing about it is known (collected by id: no mode either)."""
    if job.model:
        return job.model
    return UNNAMED if job.mode else ""


def view_file(path: Path, output_root: Path) -> Optional[dict]:
    """ComfyUI's /view address of a file inside its output folder, else None (it serves only that)."""
    try:
        inside = Path(path).resolve().relative_to(Path(output_root).resolve())
    except (ValueError, OSError):
        return None
    folder = inside.parent.as_posix()
    return {"filename": inside.name, "subfolder": "" if folder == "." else folder, "type": "output"}


def clean_message(text: str, base_url: str = "") -> str:
    """A failure or uncertainty text fit for the browser: no key, no base URL, no signed query string."""
    if not text:
        return ""
    if base_url:
        text = text.replace(base_url, "the CometAPI host")
    return _URL_TAIL.sub(r"\1?…", redact(text))


def tasks_page(journal: Journal, settings: PackSettings, now: float, output_root: Path, *, offset: int,
               limit: int) -> dict:
    """GET /cometapi_omni/tasks: a page of rows, newest first, with the totals and what is left today."""
    rates = settings.rates
    jobs = journal.jobs(limit=limit, offset=offset) if limit else []
    collecting = journal.collecting([job.task_id for job in jobs if job.task_id])  # one look for the page
    rows = [task_row(job, rates, now, output_root, job.task_id in collecting, journal.machine) for job in jobs]
    recent = recent_totals(journal, rates, now)
    return {"tasks": rows, "total": journal.count(), "offset": offset, "limit": limit,
            "totals": {"today": recent.today.as_dict(), "last_30_days": recent.last_30_days.as_dict()},
            "daily_limit_usd": settings.daily_limit_usd,
            "left_today_usd": left_today(settings, recent.today.usd), "rates_source": RATES_SOURCE, "now": now}


def left_today(settings: PackSettings, spent: float) -> Optional[float]:
    """What is left of the daily limit (never below 0), or None when there is no limit."""
    if settings.daily_limit_usd <= 0:
        return None
    return round(max(0.0, settings.daily_limit_usd - spent), 4)
