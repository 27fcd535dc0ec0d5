"""HTTP routes of the Tasks sidebar and the Spending settings (web/), beside the key routes.

    GET  /cometapi_omni/settings                  the pack's settings, the shipped defaults, today's spend
    POST /cometapi_omni/settings                  change some of them (JSON); 400 names a bad value
    GET  /cometapi_omni/tasks?offset=&limit=      a page of TaskRows, newest first, with the totals
    GET  /cometapi_omni/tasks/{task_id}           one TaskRow (what a live event tells the sidebar to read)
    GET  /cometapi_omni/tasks/{task_id}/thumb     the first frame of the task's MP4, a small JPEG
    POST /cometapi_omni/tasks/{task_id}/collect   hand the task to the background collector now

Like routes.register, `register` takes callables instead of importing ComfyUI, so the tests
mount these very handlers on a plain aiohttp app. Every route is wrapped in
`same_origin_only`, and answers a journal that cannot be read (a shared journal's database that is
away) with a 503 naming it. Work that touches the disk (the journal, settings, thumbnails) runs off
the event loop. No answer carries the key, a signed URL or the base URL (see task_rows.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from pathlib import Path
from typing import Callable

from aiohttp import web

from ..kling_omni import ledger
from ..kling_omni.collect import is_collecting
from ..kling_omni.credentials import resolve_key
from ..kling_omni.errors import DecodeError, JournalError, OmniError, SettingsError
from ..kling_omni.journal import BaseJournal as Journal
from ..kling_omni.pricing import RATES_SOURCE
from ..kling_omni.settings import DEFAULTS
from ..kling_omni.store import load_settings, save_settings  # the shared values from the database, when one is named
from ..kling_omni.task import TASK_ID_RULE, is_task_id
from ..kling_omni.thumbs import thumbnail
from .routes import PREFIX, _error, same_origin_only
from .task_rows import NOTHING_TO_LOSE, left_today, read_stamp, task_row, tasks_page

MAX_PAGE = 200
MAX_OFFSET = 1_000_000_000  # far past any journal, far below SQLite's 64-bit integers
_DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII digits only: int() would also take "+5", "5_0", " 5", "٥"
THUMBS_FOLDER = "thumbs"  # under the data folder
NO_SUCH_TASK = f"That is not a task id: {TASK_ID_RULE}."


def register(routes: web.RouteTableDef, *, data_dir: Callable[[], Path], journal: Callable[[], Journal],
             output_root: Callable[[], Path], want: Callable[[str], None]) -> None:
    """`data_dir()` holds settings.json and the thumbnail cache (it is the key store's folder);
    `output_root()` is the folder ComfyUI's /view serves as type=output; `want(task_id)` hands a
    task to the background collector."""

    @routes.get(PREFIX + "/settings")
    @same_origin_only
    @journal_may_be_away
    async def get_settings(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(_settings_answer, data_dir(), journal()))

    @routes.post(PREFIX + "/settings")
    @same_origin_only
    @journal_may_be_away
    async def post_settings(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'Send the settings to change as JSON, e.g. {"daily_limit_usd": 5}.')
        store = data_dir()
        try:
            await asyncio.to_thread(save_settings, store, changes)
        except SettingsError as exc:
            return _error(400, str(exc))
        except OSError as exc:
            return _error(500, f"Could not write the settings file in {store}: {exc.strerror or exc}.")
        except OmniError as exc:  # the shared journal's database did not take them (its error says nothing was saved)
            return _error(503, str(exc))
        return web.json_response(await asyncio.to_thread(_settings_answer, store, journal()))

    @routes.get(PREFIX + "/tasks")
    @same_origin_only
    @journal_may_be_away
    async def get_tasks(request: web.Request) -> web.Response:
        try:
            offset = _whole(request.query.get("offset", "0"), "offset", 0, MAX_OFFSET)
            limit = _whole(request.query.get("limit", "50"), "limit", 0, MAX_PAGE)
        except ValueError as exc:
            return _error(400, str(exc))
        settings = await asyncio.to_thread(load_settings, data_dir())
        now = read_stamp()  # before the read: see TaskRow.as_of
        page = await asyncio.to_thread(tasks_page, journal(), settings, now, output_root(),
                                       offset=offset, limit=limit)
        return web.json_response(page)

    @routes.get(PREFIX + "/tasks/{task_id}")
    @same_origin_only
    @journal_may_be_away
    async def get_task(request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if not is_task_id(task_id):
            return _error(404, NO_SUCH_TASK)
        now = read_stamp()  # before the read: see TaskRow.as_of
        job = await asyncio.to_thread(journal().by_task, task_id)
        if job is None:
            return _error(404, f"Task {task_id} is not in the journal.")
        settings = await asyncio.to_thread(load_settings, data_dir())
        collecting = await asyncio.to_thread(is_collecting, journal(), task_id)
        return web.json_response({"task": task_row(job, settings.rates, now, output_root(), collecting,
                                                   journal().machine)})

    @routes.get(PREFIX + "/tasks/{task_id}/thumb")
    @same_origin_only
    @journal_may_be_away
    async def get_thumb(request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        if not is_task_id(task_id):
            return _error(404, NO_SUCH_TASK)
        job = await asyncio.to_thread(journal().by_task, task_id)
        video = job.video_here(journal().machine) if job is not None else None
        if video is None:
            return _error(404, f"No video of task {task_id} is on disk.")
        try:
            data = await asyncio.to_thread(thumbnail, video, data_dir() / THUMBS_FOLDER, task_id)
        except (DecodeError, OSError) as exc:
            return _error(404, f"No thumbnail of task {task_id}: {exc}")
        tag = f'"{hashlib.blake2b(data, digest_size=8).hexdigest()}"'
        headers = {"ETag": tag, "Cache-Control": "no-cache"}  # the browser asks again, and gets a 304
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=data, content_type="image/jpeg", headers=headers)

    @routes.post(PREFIX + "/tasks/{task_id}/collect")
    @same_origin_only
    @journal_may_be_away
    async def post_collect(request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if not is_task_id(task_id):
            return _error(404, NO_SUCH_TASK)
        store = data_dir()
        now = read_stamp()  # before the read: see TaskRow.as_of
        job = await asyncio.to_thread(journal().by_task, task_id)
        if job is None:
            return _error(404, f"Task {task_id} is not in the journal.")
        if job.state in NOTHING_TO_LOSE:
            return _error(409, f"Task {task_id} {job.state}: it has no video to collect.")
        try:
            await asyncio.to_thread(resolve_key, store)
        except OmniError as exc:  # no key (or an unusable one): say where to set it
            return _error(409, str(exc))
        want(task_id)
        settings = await asyncio.to_thread(load_settings, store)
        row = task_row(job, settings.rates, now, output_root(), collecting=False, here=journal().machine)
        return web.json_response({"task": row}, status=202)


def journal_may_be_away(handler):
    """A journal that cannot be read now (a shared journal's database that does not answer) is said as a 503
    with its message, which names the database without its password, never as a server error."""
    @functools.wraps(handler)
    async def answering(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except JournalError as exc:
            return _error(503, str(exc))
    return answering


def _settings_answer(store: Path, journal: Journal) -> dict:
    settings = load_settings(store)
    spent = ledger.spent_today(journal, settings.rates)
    answer = {"settings": settings.as_dict(), "defaults": DEFAULTS.as_dict(), "rates_source": RATES_SOURCE,
              "today": {"usd": round(spent, 4), "left_usd": left_today(settings, spent)},
              "limit_unknown": settings.limit_unknown}  # why Submit refuses ("" when it does not)
    if settings.limit_unknown:  # a file that could not be read at all is kept aside by a save here; else not
        answer["limit_set_aside"] = not settings.limit_fix
    return answer


def _whole(text: str, name: str, low: int, high: int) -> int:
    value = int(text) if _DIGITS.fullmatch(text) else None
    if value is None or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high} (got {text[:20]!r}).")
    return value
