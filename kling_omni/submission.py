"""Submit intents exactly once: the same request and seed never create a second task.

An intent is (request fingerprint, seed). The journal remembers its task across restarts.
A failed task may be retried (a new attempt with its own external_task_id). A creation
whose outcome is unknown is never resent blindly: it is resolved by asking the server for
our external_task_id, resent only where the host is known to refuse a duplicate, and
otherwise reported with what to do.

A batch (the variations of one Submit, the items of a prompt list) is priced whole before
anything is sent: the daily spend guard refuses it whole, or every new intent is journalled
as "waiting" with its cost reserved. Each is then sent in turn, at the account's pace: no
more tasks in flight per key than the account allows (a setting, or learned from its 429
code 1303 answers); a creation over the limit waits for one of this install's tasks to end
(the wait asks their status) or for a backoff to run out. A creation refused with 429 made
nothing: it is resent under the same external id. Cancel and the timeout stop the wait;
what was created stays created, what was waiting is given up and costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional

from . import journal as J
from .errors import (BadRequest, CreationUncertain, JournalError, ModelRefused, NotFound, OmniError, RateLimited,
                     SlotWaitCancelled, SlotWaitStopped, SlotWaitTimeout)
from .journal import Journal
from .ledger import check_daily_limit, spent_today
from .pricing import estimate
from .request import OmniRequest
from .settings import DEFAULTS, PackSettings
from .task import ENDED, FAILED, OmniTask, TaskState
from .waiting import POOL, SLICE, UPDATE_EVERY, Backoff

log = logging.getLogger("cometapi_omni")
REUSABLE = {"queued", "processing", "succeeded", ENDED}  # ENDED: maybe billed, never retried on its own
RETRYABLE = {FAILED, J.REJECTED}
SLOT_BACKOFF = Backoff(base=2.0, cap=30.0, jitter=1.0)  # between creation tries while the account is full
FLIGHT_WINDOW = 24 * 3600.0  # a row older than this no longer counts as holding a slot (never polled again)

_locks: dict = {}
_locks_guard = threading.Lock()
_sending: set = set()  # fingerprints whose creation this process is making right now
_budget = threading.Lock()  # the guard's check and the reservations it allows happen as one step


@dataclass(frozen=True)
class Intent:
    """One paid generation asked for: a request and a seed."""

    request: OmniRequest
    seed: int

    @property
    def fingerprint(self) -> str:
        return intent_fingerprint(self.request, self.seed)


def intent_fingerprint(request: OmniRequest, seed: int) -> str:
    return hashlib.sha256(f"{request.fingerprint()}:{int(seed)}".encode()).hexdigest()


def external_id(fingerprint: str, attempt: int) -> str:
    # Unique per account (Kling refuses a repeat), stable per attempt so a resend can be recognised.
    return f"comfy-{fingerprint[:32]}-{attempt}"


def _lock(fingerprint: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(fingerprint, threading.Lock())


@contextlib.contextmanager
def _holding(fingerprints):
    """Each intent's lock, taken in one order (two batches sharing intents cannot deadlock)."""
    with contextlib.ExitStack() as stack:
        for fingerprint in sorted(set(fingerprints)):
            stack.enter_context(_lock(fingerprint))
        yield


class Pace:
    """How many tasks each key may have in flight: the user's setting, or what its 429 answers taught.

    A learned limit is trusted for LEARNED_FOR seconds, then tried again: a plan can grow, and
    a creation refused with 429 costs nothing.
    """

    LEARNED_FOR = 600.0

    def __init__(self):
        self._learned: dict = {}  # key_id -> (limit, when, why)
        self._guard = threading.Lock()

    def limit(self, key_id: str, setting: int) -> tuple:
        """(limit or None, where it comes from)."""
        if setting > 0:
            return setting, "your setting in Settings › CometAPI"
        with self._guard:
            limit, when, why = self._learned.get(key_id, (None, 0.0, ""))
            if limit is not None and time.monotonic() - when > self.LEARNED_FOR:
                del self._learned[key_id]
                return None, ""
        return limit, f"learned from CometAPI's answer {why}" if limit is not None else ""

    def refused(self, key_id: str, running: int, why: str) -> None:
        """A 429 with `running` tasks of ours in flight: the account allows at most that many."""
        if running > 0:
            with self._guard:
                known = self._learned.get(key_id, (running, 0.0, why))[0]
                self._learned[key_id] = (min(running, known), time.monotonic(), why)

    def accepted(self, key_id: str, running: int) -> None:
        """A creation went through with `running` others in flight: the limit is above that."""
        with self._guard:
            if key_id in self._learned and running + 1 > self._learned[key_id][0]:
                limit, when, why = self._learned[key_id]
                self._learned[key_id] = (running + 1, when, why)

    def forget(self) -> None:
        with self._guard:
            self._learned.clear()


PACE = Pace()  # one per process: every Submit of this install shares the account's slots


def submit(request: OmniRequest, seed: int, journal: Journal, client_factory: Callable, **options) -> OmniTask:
    """The task for one intent; see submit_all."""
    return submit_all([Intent(request, seed)], journal, client_factory, **options)[0]


def submit_all(intents: list, journal: Journal, client_factory: Callable, *, node: str = "CometOmniSubmit",
               node_id: str = "", timeout: float = 1800.0, should_stop: Optional[Callable[[], bool]] = None,
               on_wait: Optional[Callable[[str], None]] = None, settings: PackSettings = DEFAULTS,
               interval: float = 5.0) -> list:
    """The tasks for these intents, in order, creating only those that do not exist yet.

    `client_factory()` is called only when the network is needed, so journalled intents cost
    no request and need no key. Raises SpendLimitReached before anything is sent when the new
    intents would take today's spend past the daily limit. While no slot is free, `on_wait(text)`
    says so (status queries of the running tasks every `interval` s); the wait ends with
    SlotWaitTimeout after `timeout` seconds without a free slot, or with SlotWaitCancelled within
    SLICE of `should_stop()` turning true.
    """
    slot = _SlotWait(timeout, should_stop, on_wait)
    distinct: dict = {}  # the same request and seed twice in one batch is one intent: one task, handed out twice
    for intent in intents:
        distinct.setdefault(intent.fingerprint, intent)
    tasks: dict = {}  # fingerprint -> OmniTask
    with _holding(distinct):
        pending = []
        for fingerprint, intent in distinct.items():
            job = journal.latest(fingerprint)
            if job is not None and job.state in REUSABLE and job.task_id:
                tasks[fingerprint] = OmniTask(job.task_id, intent.request.prompt, fingerprint)
            else:
                pending.append((intent, job))
        if pending:
            with client_factory() as client:
                _reserve([(i, job) for i, job in pending if job is None or job.state in RETRYABLE],
                         journal, client, node=node, node_id=str(node_id), settings=settings)
                created = [t.task_id for t in tasks.values()]
                try:
                    for intent, _ in pending:
                        task = _settle_intent(intent, journal, client, slot, settings, interval)
                        tasks[intent.fingerprint] = task
                        created.append(task.task_id)
                        slot.restart()  # the timeout is for a wait without progress, not for the batch
                except SlotWaitStopped as stopped:
                    raise stopped.in_batch(created, len(distinct)) if len(distinct) > 1 else stopped
                except OmniError as failure:
                    if isinstance(failure, JournalError):  # e.g. deleted meanwhile: keep what was paid known
                        for task_id in created:
                            journal.adopt(task_id, base_url=client.base_url)
                    if len(distinct) > 1 and created:  # whatever stopped it, say what the batch did make
                        failure.args = (f"{failure} Before this, {len(created)} of {len(distinct)} tasks of the "
                                        f"batch were created ({', '.join(created)}): they run on and are collected "
                                        f"as usual; queue again to make the rest (those are reused).",)
                    raise
                finally:
                    _give_up_waiting([i for i, _ in pending if i.fingerprint not in tasks], journal)
    return [tasks[intent.fingerprint] for intent in intents]


def _reserve(fresh: list, journal: Journal, client, *, node: str, node_id: str, settings: PackSettings) -> None:
    """Price the new intents, refuse them whole past the daily limit, else journal them as waiting."""
    if not fresh:
        return
    with _budget:  # two Submits at once must not both pass on the same remaining budget
        costs = [estimate(intent.request, settings.rates) for intent, _ in fresh]
        if settings.daily_limit_usd > 0:
            check_daily_limit(spent_today(journal, settings.rates), costs, settings.daily_limit_usd, node=node)
        for (intent, job), cost in zip(fresh, costs):
            attempt = job.attempt + 1 if job is not None else 1
            journal.begin(intent.fingerprint, attempt, external_id(intent.fingerprint, attempt),
                          prompt=intent.request.summary(), base_url=client.base_url, node_id=node_id,
                          mode=cost.mode, seconds=cost.seconds, video_input=cost.video_input,
                          key_id=client.key_id, state=J.WAITING, model=intent.request.model,
                          sound=intent.request.sound, shots=len(intent.request.shots),
                          auto_shots=intent.request.auto_shots)


def _settle_intent(intent: Intent, journal: Journal, client, slot: "_SlotWait", settings: PackSettings,
                   interval: float) -> OmniTask:
    """The task of one intent that has no live task in the journal: resolve, or create it."""
    job = journal.latest(intent.fingerprint)
    if job is None:  # reserved a moment ago: the journal was deleted or replaced since
        raise JournalError(f"The job journal {journal.path} no longer holds this intent (deleted or replaced while "
                           f"it was in use), so it was not sent. Queue again.", path=journal.path)
    if job.state in (J.SENDING, J.UNCERTAIN):
        task = _resolve_uncertain(job, intent.request, journal, client)
        if task is not None:
            return task
        # Proven absent: it waits for a slot like any other (its own row must not hold one).
        journal.settle(job.fingerprint, job.attempt, J.WAITING, message=job.message)
        return _create(intent, job.attempt, journal, client, slot, settings, interval, resend=True)
    # waiting: reserved just now, or left by a run that stopped before sending it
    return _create(intent, job.attempt, journal, client, slot, settings, interval)


def _give_up_waiting(unsettled: list, journal: Journal) -> None:
    """Rows still waiting when a batch stops were never sent: free their reserved cost."""
    for intent in unsettled:
        job = journal.latest(intent.fingerprint)
        if job is not None and job.state == J.WAITING:
            journal.settle(job.fingerprint, job.attempt, J.REJECTED,
                           message="not sent: the batch stopped before a slot was free")


def _running(journal: Journal, client) -> list:
    """This key's tasks that hold a slot, made through this host (another host's could never be
    seen to end). A row 'sending' that this process is not sending was left by a crash: an
    unanswered creation, not counted (like an uncertain one), or it would hold a slot for a day,
    and its own batch would wait for it."""
    with _locks_guard:
        sending = set(_sending)
    return [job for job in journal.in_flight(client.key_id, since=time.time() - FLIGHT_WINDOW)
            if job.base_url == client.base_url and (job.state != J.SENDING or job.fingerprint in sending)]


@contextlib.contextmanager
def _making(fingerprint: str):
    with _locks_guard:
        _sending.add(fingerprint)
    try:
        yield
    finally:
        with _locks_guard:
            _sending.discard(fingerprint)


def _wait_for_slot(journal: Journal, client, slot: "_SlotWait", settings: PackSettings, interval: float) -> int:
    """Block until this key has fewer tasks in flight than it may; return how many are in flight."""
    while True:
        running = _running(journal, client)
        limit, source = PACE.limit(client.key_id, settings.max_in_flight)
        if limit is None or len(running) < limit:
            return len(running)
        # Between its own status queries it still sees, within a second, a slot another node freed
        # (a Poll, the background collector: they write the journal).
        waiting_for = f"one of the {len(running)} running tasks to end (at most {limit} at once: {source})"
        freed = slot.wait(interval, waiting_for, ready=lambda: len(_running(journal, client)) < limit,
                          text=lambda left: (f"waiting for a free slot ({len(running)} running, at most {limit} "
                                             f"at once) · waited {time.monotonic() - slot.start:.0f} s"))
        if not freed:
            _refresh(journal, client, running, slot, waiting_for)


def _refresh(journal: Journal, client, running: list, slot: "_SlotWait", waiting_for: str) -> None:
    """Ask how the running tasks are doing, so the ones that ended free their slots."""
    for job in running:
        if not job.task_id:
            continue  # being sent by another Submit right now
        try:
            state = slot.run(client.get_task, job.task_id, waiting_for=waiting_for)
        except OmniError as exc:  # a status query that fails keeps the slot taken; the wait goes on
            log.debug("Status of task %s unknown while waiting for a slot: %s", job.task_id, exc)
            continue
        if state.status != job.state:
            journal.update_task(job.task_id, state=state.status)


def _create(intent: Intent, attempt: int, journal: Journal, client, slot: "_SlotWait", settings: PackSettings,
            interval: float, *, resend: bool = False) -> OmniTask:
    with _making(intent.fingerprint):
        return _send(intent, attempt, journal, client, slot, settings, interval, resend=resend)


def _send(intent: Intent, attempt: int, journal: Journal, client, slot: "_SlotWait", settings: PackSettings,
          interval: float, *, resend: bool) -> OmniTask:
    request, fingerprint = intent.request, intent.fingerprint
    ext = external_id(fingerprint, attempt)
    try:
        while True:
            running = _wait_for_slot(journal, client, slot, settings, interval)
            slot.check_cancel()  # Cancel between two creations of a batch: the rest is never sent
            journal.settle(fingerprint, attempt, J.SENDING)  # a crash from here on leaves it uncertain
            try:
                state: TaskState = client.create_task(request.payload(external_task_id=ext))
                break
            except RateLimited as refused:
                # Nothing was made: back to waiting (its cost still reserved), and learn the account's
                # limit. Resent under the same external id: nothing exists under it.
                journal.settle(fingerprint, attempt, J.WAITING, message=str(refused))
                if refused.code in (1303, None, ""):  # too many at once (1302, "too fast", says nothing of slots)
                    PACE.refused(client.key_id, running, _refusal(refused))
                slot.pause(refused, running, freed=lambda: len(_running(journal, client)) < running)
    except CreationUncertain as exc:
        journal.settle(fingerprint, attempt, J.UNCERTAIN, message=str(exc))
        raise CreationUncertain(
            f"The creation request was sent but {exc.reason or 'its answer was lost'}, so a task may exist "
            f"and may be billed. It was not resent. Queue again: the pack then looks the task up by its "
            f"external id ({ext}) and collects it, and creates none unless it can prove none exists.",
            external_task_id=ext, status=exc.status, reason=exc.reason) from exc
    except SlotWaitStopped:
        raise  # still waiting: given up by the caller, nothing was created
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
        if isinstance(exc, ModelRefused):
            raise exc.for_model(request.model) from exc
        raise
    # Logged before it is journalled: if the journal cannot be written, the paid id is still known.
    log.info("CometAPI created Kling task %s (external id %s)", state.task_id, ext)
    try:
        journal.settle(fingerprint, attempt, state.status, task_id=state.task_id)
    except JournalError:
        journal.adopt(state.task_id, base_url=client.base_url)  # its row went (a deleted journal): a new one
        if journal.by_task(state.task_id) is None:
            raise  # the journal takes nothing: the error names the task to collect
        log.warning("The job journal lost the row of task %s while it was created; it is journalled again as a "
                    "task to collect.", state.task_id)
    journal.learn_echo(client.base_url, state.external_task_id == ext)
    PACE.accepted(client.key_id, running)
    return OmniTask(state.task_id, request.prompt, fingerprint)


class _SlotWait:
    """Waiting for a free slot: backoff or Retry-After after a 429, cancel, a deadline, progress text."""

    def __init__(self, timeout: float, should_stop, on_wait):
        self.timeout = timeout
        self.should_stop = should_stop or (lambda: False)
        self.on_wait = on_wait
        self.restart()

    def restart(self) -> None:
        """A task was created: the next wait gets the whole timeout again, and a fresh backoff."""
        self.refusals = 0
        self.start = time.monotonic()
        self.deadline = self.start + self.timeout
        self._shown = -UPDATE_EVERY

    def pause(self, refused: RateLimited, running: int, freed: Callable[[], bool]) -> None:
        """After a 429: until the backoff (or Retry-After) runs out, or one of our running tasks ends."""
        delay = SLOT_BACKOFF.delay(self.refusals, refused.retry_after)
        self.refusals += 1
        what = f"CometAPI's answer {_refusal(refused)} to change"
        if self.refusals == 1:
            log.info("No free slot for a new task: CometAPI answered %s with %d of ours running. Trying again "
                     "until it is accepted (nothing is created meanwhile).", _refusal(refused), running)
        self.wait(delay, what, ready=freed if running else (lambda: False),
                  text=lambda left: (f"waiting for a free slot ({running} running): CometAPI answered "
                                     f"{_refusal(refused)} · next try in {math.ceil(left)} s · "
                                     f"waited {time.monotonic() - self.start:.0f} s"))

    def check_cancel(self) -> None:
        """Cancel between two creations of a batch, with no slot to wait for."""
        if self.should_stop():
            raise SlotWaitCancelled("", why="Cancelled before the next creation of the batch.")

    def _check(self, waiting_for: str) -> None:
        if self.should_stop():
            raise SlotWaitCancelled(waiting_for)
        if time.monotonic() >= self.deadline:
            raise SlotWaitTimeout(time.monotonic() - self.start, waiting_for)

    def run(self, fn, *args, waiting_for: str):
        """fn(*args) on the pack's thread pool, raced against Cancel and the deadline: a slow
        status answer never holds up either (the abandoned call ends with its own timeout)."""
        job = POOL.submit(fn, *args)
        try:
            while True:
                try:
                    return job.result(timeout=SLICE)
                except FutureTimeout:
                    self._check(waiting_for)
        finally:
            if not job.done():
                job.add_done_callback(lambda j: j.cancelled() or j.exception())

    def wait(self, seconds: float, waiting_for: str, ready: Callable[[], bool], text=None) -> bool:
        """Sleep up to `seconds` in slices; True as soon as ready(). Raise SlotWaitCancelled /
        SlotWaitTimeout when due."""
        wake = time.monotonic() + seconds
        last_check = time.monotonic()
        while True:
            now = time.monotonic()
            self._check(waiting_for)
            if now >= wake:
                return False
            if now - last_check >= 1.0:  # a cheap journal read, once a second
                last_check = now
                if ready():
                    return True
            if self.on_wait is not None and now - self._shown >= UPDATE_EVERY:
                self._shown = now
                self.on_wait(text(wake - now) if text else
                             f"waiting for a free slot: {waiting_for} · waited {now - self.start:.0f} s")
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
