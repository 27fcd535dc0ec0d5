"""Submit an intent exactly once: the same request and seed never create a second task.

An intent is (request fingerprint, seed). The journal remembers its task across restarts.
A failed task may be retried (a new attempt with its own external_task_id). A creation
whose outcome is unknown is never resent blindly: it is resolved by asking the server for
our external_task_id, resent only where the host is known to refuse a duplicate, and
otherwise reported with what to do.

A creation refused with 429 (Kling 1302/1303: the account is at its limit of tasks in
flight, or too fast) made nothing: it is journalled as such, then resent under the same
external id after a backoff, until it is accepted, the timeout passes or the user cancels.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from datetime import datetime
from typing import Callable, Optional

from . import journal as J
from .errors import (BadRequest, CreationUncertain, NotFound, OmniError, RateLimited, SlotWaitCancelled,
                     SlotWaitStopped, SlotWaitTimeout)
from .journal import Journal
from .request import OmniRequest
from .task import FAILED, OmniTask, TaskState
from .waiting import SLICE, UPDATE_EVERY, Backoff

log = logging.getLogger("cometapi_omni")
REUSABLE = {"queued", "processing", "succeeded"}
RETRYABLE = {FAILED, J.REJECTED}
SLOT_BACKOFF = Backoff(base=2.0, cap=30.0, jitter=1.0)  # between creation tries while the account is full

_locks: dict = {}
_locks_guard = threading.Lock()


def intent_fingerprint(request: OmniRequest, seed: int) -> str:
    return hashlib.sha256(f"{request.fingerprint()}:{int(seed)}".encode()).hexdigest()


def external_id(fingerprint: str, attempt: int) -> str:
    # Unique per account (Kling refuses a repeat), stable per attempt so a resend can be recognised.
    return f"comfy-{fingerprint[:32]}-{attempt}"


def _lock(fingerprint: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(fingerprint, threading.Lock())


def submit(request: OmniRequest, seed: int, journal: Journal, client_factory: Callable, *,
           node_id: str = "", timeout: float = 1800.0, should_stop: Optional[Callable[[], bool]] = None,
           on_wait: Optional[Callable[[str], None]] = None) -> OmniTask:
    """Return the task for this intent, creating it only if none exists.

    `client_factory()` is called only when the network is needed, so a journalled intent
    costs no request and needs no key. While the account has no free slot, `on_wait(text)`
    says so; the wait ends with SlotWaitTimeout after `timeout` seconds, or with
    SlotWaitCancelled within SLICE of `should_stop()` turning true.
    """
    slot = _SlotWait(timeout, should_stop, on_wait)
    fingerprint = intent_fingerprint(request, seed)
    with _lock(fingerprint):  # two identical Submit nodes in one prompt share one task
        job = journal.latest(fingerprint)
        if job is not None and job.state in REUSABLE and job.task_id:
            return OmniTask(job.task_id, request.prompt, fingerprint)
        with client_factory() as client:
            if job is not None and job.state in (J.SENDING, J.UNCERTAIN):
                task = _resolve_uncertain(job, request, journal, client)
                if task is not None:
                    return task
                return _create(request, fingerprint, job.attempt, journal, client, slot, resend=True)
            attempt = job.attempt + 1 if job is not None else 1
            journal.begin(fingerprint, attempt, external_id(fingerprint, attempt),
                          prompt=request.summary(), base_url=client.base_url, node_id=str(node_id))
            return _create(request, fingerprint, attempt, journal, client, slot)


def _create(request: OmniRequest, fingerprint: str, attempt: int, journal: Journal, client, slot: "_SlotWait", *,
            resend: bool = False) -> OmniTask:
    ext = external_id(fingerprint, attempt)
    try:
        while True:
            try:
                state: TaskState = client.create_task(request.payload(external_task_id=ext))
                break
            except RateLimited as refused:
                # Nothing was made. Journal that first, so a crash while waiting leaves a clean
                # row; then mark it sending again before the resend, so a crash mid-send stays
                # "uncertain". The same external id: nothing exists under it.
                journal.settle(fingerprint, attempt, J.REJECTED, message=str(refused))
                slot.pause(refused)
                journal.settle(fingerprint, attempt, J.SENDING)
    except CreationUncertain as exc:
        journal.settle(fingerprint, attempt, J.UNCERTAIN, message=str(exc))
        raise CreationUncertain(
            f"The creation request was sent but {exc.reason or 'its answer was lost'}, so a task may exist "
            f"and may be billed. It was not resent. Queue again: the pack then looks the task up by its "
            f"external id ({ext}) and collects it, and creates none unless it can prove none exists.",
            external_task_id=ext, status=exc.status, reason=exc.reason) from exc
    except SlotWaitStopped:
        raise  # journalled as rejected already: nothing was created
    except OmniError as exc:
        if resend or _names_external_id(exc, ext):
            # A refusal of our external id means a task with it exists: the lost answer of a
            # resend, or the same intent made under a journal we no longer have (reinstall,
            # another machine). Collect that task; never pay for a second one.
            found = _find_by_external_id(client, ext)
            if found is not None:
                journal.settle(fingerprint, attempt, found.status, task_id=found.task_id)
                return OmniTask(found.task_id, request.prompt, fingerprint)
            journal.settle(fingerprint, attempt, J.UNCERTAIN, message=str(exc))
            raise CreationUncertain(_uncertain_message(
                journal.latest(fingerprint), f"CometAPI refused it under the same external id: {exc}"),
                external_task_id=ext) from exc
        # A definite refusal: nothing was created, so a re-run may try again.
        journal.settle(fingerprint, attempt, J.REJECTED, message=str(exc))
        raise
    # Logged before it is journalled: if the journal cannot be written, the paid id is still known.
    log.info("CometAPI created Kling task %s (external id %s)", state.task_id, ext)
    journal.settle(fingerprint, attempt, state.status, task_id=state.task_id)
    journal.learn_echo(client.base_url, state.external_task_id == ext)
    return OmniTask(state.task_id, request.prompt, fingerprint)


class _SlotWait:
    """The wait between creation tries refused with 429: backoff or Retry-After, cancel, deadline, progress."""

    def __init__(self, timeout: float, should_stop, on_wait):
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.should_stop = should_stop or (lambda: False)
        self.on_wait = on_wait
        self.refusals = 0

    def pause(self, refused: RateLimited) -> None:
        """Sleep until the next try, in slices; raise SlotWaitCancelled / SlotWaitTimeout when due."""
        wake = time.monotonic() + SLOT_BACKOFF.delay(self.refusals, refused.retry_after)
        self.refusals += 1
        what = _refusal(refused)
        if self.refusals == 1:
            log.info("No free slot for a new task: CometAPI answered %s. Trying again until it is accepted "
                     "(nothing is created meanwhile).", what)
        shown = -UPDATE_EVERY
        while True:
            now = time.monotonic()
            if self.should_stop():
                raise SlotWaitCancelled(what)
            if now >= self.deadline:
                raise SlotWaitTimeout(now - self.start, what)
            if now >= wake:
                return
            if self.on_wait is not None and now - shown >= UPDATE_EVERY:
                shown = now
                self.on_wait(f"waiting for a free slot: CometAPI answered {what} · "
                             f"next try in {math.ceil(wake - now)} s · waited {now - self.start:.0f} s")
            time.sleep(min(SLICE, wake - now, self.deadline - now))


_SHORT_CODES = {1302: "requests too fast", 1303: "too many tasks in flight for your plan"}


def _refusal(exc: RateLimited) -> str:
    """'429 (Kling 1303: too many tasks in flight for your plan)', as in 'CometAPI answered …'."""
    code = exc.code if isinstance(exc.code, int) else None
    reason = f"Kling {code}: {_SHORT_CODES[code]}" if code in _SHORT_CODES else "rate limited"
    return f"{exc.status or 'an error'} ({reason})"


def _names_external_id(exc: Exception, ext: str) -> bool:
    detail = str(getattr(exc, "detail", "") or exc)
    return isinstance(exc, BadRequest) and (ext in detail or "external_task_id" in detail.lower())


def _find_by_external_id(client, ext: str):
    try:
        return client.get_task(ext)
    except OmniError:
        return None


def _resolve_uncertain(job: J.Job, request: OmniRequest, journal: Journal, client):
    """Find the task an unanswered creation may have made. None means: proven absent."""
    try:
        state = client.get_task(job.external_task_id)  # Kling accepts the external id here
    except NotFound:
        state = None
    except OmniError as exc:
        raise CreationUncertain(_uncertain_message(job, f"Checking for it failed: {exc}"),
                                external_task_id=job.external_task_id) from exc
    if state is not None:
        journal.settle(job.fingerprint, job.attempt, state.status, task_id=state.task_id)
        return OmniTask(state.task_id, request.prompt, job.fingerprint)
    if journal.echoes_external_id(client.base_url):
        return None  # the host passes our external id to Kling, which refuses a duplicate
    raise CreationUncertain(_uncertain_message(
        job, "CometAPI does not find it by its external id, but this host has not shown that it "
             "passes external ids to Kling, so the pack cannot prove no task exists."),
        external_task_id=job.external_task_id)


def _uncertain_message(job: J.Job, detail: str) -> str:
    when = datetime.fromtimestamp(job.created_at).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"An earlier creation request for this exact request and seed (sent {when}, external id "
        f"{job.external_task_id}) got no answer, so a task may exist and may have been billed. {detail} "
        "To avoid paying twice the pack will not resend it on its own. Check your CometAPI task log: "
        "if the task is there, put its id in a CometOmniPoll task_id input to collect it. "
        "To create a new task anyway, change the seed on CometOmniSubmit."
    )
