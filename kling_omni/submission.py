"""Submit an intent exactly once: the same request and seed never create a second task.

An intent is (request fingerprint, seed). The journal remembers its task across restarts.
A failed task may be retried (a new attempt with its own external_task_id). A creation
whose outcome is unknown is never resent blindly: it is resolved by asking the server for
our external_task_id, resent only where the host is known to refuse a duplicate, and
otherwise reported with what to do.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime
from typing import Callable

from . import journal as J
from .errors import BadRequest, CreationUncertain, NotFound, OmniError
from .journal import Journal
from .request import OmniRequest
from .task import FAILED, OmniTask, TaskState

log = logging.getLogger("cometapi_omni")
REUSABLE = {"queued", "processing", "succeeded"}
RETRYABLE = {FAILED, J.REJECTED}

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
           node_id: str = "") -> OmniTask:
    """Return the task for this intent, creating it only if none exists.

    `client_factory()` is called only when the network is needed, so a journalled intent
    costs no request and needs no key.
    """
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
                return _create(request, fingerprint, job.attempt, journal, client, resend=True)
            attempt = job.attempt + 1 if job is not None else 1
            journal.begin(fingerprint, attempt, external_id(fingerprint, attempt),
                          prompt=request.summary(), base_url=client.base_url, node_id=str(node_id))
            return _create(request, fingerprint, attempt, journal, client)


def _create(request: OmniRequest, fingerprint: str, attempt: int, journal: Journal, client, *,
            resend: bool = False) -> OmniTask:
    ext = external_id(fingerprint, attempt)
    try:
        state: TaskState = client.create_task(request.payload(external_task_id=ext))
    except CreationUncertain as exc:
        journal.settle(fingerprint, attempt, J.UNCERTAIN, message=str(exc))
        raise CreationUncertain(
            f"The creation request was sent but {exc.reason or 'its answer was lost'}, so a task may exist "
            f"and may be billed. It was not resent. Queue again: the pack then looks the task up by its "
            f"external id ({ext}) and collects it, and creates none unless it can prove none exists.",
            external_task_id=ext, status=exc.status, reason=exc.reason) from exc
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
