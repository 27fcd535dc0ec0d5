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
from .journal import BaseJournal as Journal
from .ledger import check_daily_limit, day_start, spent_today
from .pricing import estimate
from .request import OmniRequest
from .settings import DEFAULTS, PackSettings
from .task import FAILED, OmniTask, TaskState
from .waiting import POOL, SLICE, UPDATE_EVERY, Backoff

log = logging.getLogger("cometapi_omni")
RETRYABLE = {FAILED, J.REJECTED}
SLOT_BACKOFF = Backoff(base=2.0, cap=30.0, jitter=1.0)  # between creation tries while the account is full
FLIGHT_WINDOW = 24 * 3600.0  # a row older than this no longer counts as holding a slot (never polled again)



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
    intents would take today's spend past the daily limit. An intent another run (in this
    process or another) is working on is left to it: this run waits for the task it creates.
    While no slot is free, `on_wait(text)` says so (status queries of the running tasks every
    `interval` s); the wait ends with SlotWaitTimeout after `timeout` seconds without progress,
    or with SlotWaitCancelled within SLICE of `should_stop()` turning true.
    """
    slot = _SlotWait(timeout, should_stop, on_wait)
    distinct: dict = {}  # the same request and seed twice in one batch is one intent: one task, handed out twice
    for intent in intents:
        distinct.setdefault(intent.fingerprint, intent)
    tasks: dict = {}  # fingerprint -> OmniTask
    pending = []
    for fingerprint, intent in distinct.items():
        try:
            job = journal.latest(fingerprint)
        except JournalError as exc:
            raise _nothing_sent(exc, journal) from exc
        if _has_task(job):
            tasks[fingerprint] = OmniTask(job.task_id, intent.request.prompt, fingerprint)
        else:
            pending.append(intent)
    if pending:
        owners = journal.owners()
        with client_factory() as client:
            run = _Run(journal, client, slot, settings, interval, owners, node=node, node_id=str(node_id))
            created = [t.task_id for t in tasks.values()]
            claims: dict = {}  # this round's: what each pending intent came to
            try:
                while pending:
                    claims = run.reserve(pending)
                    followed = []
                    for intent in pending:
                        how, job = claims[intent.fingerprint]
                        if how == _THEIRS:
                            followed.append(intent)
                            continue
                        if how == _TASK:  # another run made it meanwhile: adopted, paid once
                            task = OmniTask(job.task_id, intent.request.prompt, job.fingerprint)
                        else:
                            task = run.settle(intent, job)
                        tasks[intent.fingerprint] = task
                        created.append(task.task_id)
                        slot.restart()  # the timeout is for a wait without progress, not for the batch
                    pending = followed
                    if pending:
                        run.follow(pending)
            except SlotWaitStopped as stopped:
                # Another run's intents of this round, whether or not this round had reached them yet.
                elsewhere = len([fp for fp, (how, _) in claims.items() if how == _THEIRS and fp not in tasks])
                raise (stopped.in_batch(created, len(distinct), elsewhere, journal.OTHER_RUNS)
                       if len(distinct) > 1 or elsewhere
                       else stopped)
            except OmniError as failure:
                made = getattr(failure, "task_id", None)
                if isinstance(failure, JournalError) and made and made not in created:
                    created.append(made)  # created, but the journal could not record it: paid all the same
                if isinstance(failure, JournalError):  # e.g. deleted meanwhile: keep what was paid known
                    for task_id in created:
                        journal.adopt(task_id, base_url=client.base_url)
                if len(distinct) > 1 and created:  # whatever stopped it, say what the batch did make
                    failure.args = (f"{failure} So far, {len(created)} of {len(distinct)} tasks of the "
                                    f"batch were created ({', '.join(created)}): they run on and are collected "
                                    f"as usual; queue again to make the rest (those are reused).",)
                raise
            finally:
                run.end([fingerprint for fingerprint in distinct if fingerprint not in tasks])
    return [tasks[intent.fingerprint] for intent in intents]


def _has_task(job: Optional[J.Job]) -> bool:
    """A row that holds a task is that task (whatever its state but failed): it is never sent again."""
    return job is not None and bool(job.task_id) and job.state != FAILED


_TASK, _NEW, _MINE, _THEIRS = "task", "new", "mine", "theirs"  # what a reservation found for an intent


class _Run:
    """One Submit run's work on the journal: its owner token, its client, its pace and its waits."""

    def __init__(self, journal: Journal, client, slot: "_SlotWait", settings: PackSettings, interval: float,
                 owners, *, node: str, node_id: str):
        self.journal, self.client, self.slot = journal, client, slot
        self.settings, self.interval, self.owners = settings, interval, owners
        self.node, self.node_id = node, node_id
        self.pace = journal.shared_pace or PACE  # a shared journal's machines learn the account's limit together
        try:
            self.owner = owners.start_run()
        except JournalError as exc:  # a shared journal's database: the run's lock is its own connection
            raise _nothing_sent(exc, journal) from exc
        except OSError as exc:
            raise JournalError(
                f"The job journal {journal.path} cannot be written: its folder does not take files "
                f"({exc.strerror or exc}). Every paid request is recorded there before it is sent, so nothing was "
                f"sent to CometAPI. Make that folder writable (or free disk space), then queue again.",
                path=journal.path) from exc

    def end(self, unsettled: list) -> None:
        """What this run still holds: waiting rows were never sent (their cost is freed); the rest is
        handed back, anyone's to resolve. If the journal cannot take that, ending the run's lock says
        the same to every other run: they take its rows over."""
        try:
            self.journal.give_up(self.owner, unsettled, "not sent: the batch stopped before a slot was free")
        except JournalError as exc:  # never in place of what stopped the run
            log.warning("%s The waiting rows of this Submit run are taken over by the next run of their intents.", exc)
        finally:
            try:
                self.journal.hand_back(self.owner)
            finally:
                self.owners.end_run(self.owner)

    # --- one atomic step each ------------------------------------------------------------

    def reserve(self, intents: list) -> dict:
        """fingerprint -> (how, job), in one decision: a task to reuse; a row another live run works on;
        a row left by a run that is gone, now this run's; or a new attempt, journalled as waiting with
        its cost reserved, once the whole batch of them fits today's limit (else nothing is journalled)."""
        rates = self.settings.rates
        claims, fresh, unsent, carried = {}, [], [], []
        self.owners.keep(self.owner)
        with self.journal.decide() as tx:
            today = day_start(tx)
            for intent in intents:
                job = tx.latest(intent.fingerprint)
                if _has_task(job):
                    claims[intent.fingerprint] = (_TASK, job)
                elif job is None or job.state in RETRYABLE:
                    fresh.append((intent, job))
                elif job.owner != self.owner and self.owners.alive(job.owner):
                    claims[intent.fingerprint] = (_THEIRS, job)
                else:  # left by a run that ended or died: an unsent or unanswered creation, now ours
                    stamp = self.journal.never_sent.get((job.fingerprint, job.attempt))
                    if stamp is not None and tx.unsend(job, self.owner, stamp):
                        unsent.append((job.fingerprint, job.attempt))  # forgotten once this decision holds
                        # marked sending here, never sent: waiting again, not an unanswered creation
                    elif job.owner != self.owner:
                        tx.take(job, self.owner)
                        self.owners.forget_gone(job.owner)
                    mine = tx.latest(intent.fingerprint)
                    claims[intent.fingerprint] = (_MINE, mine)
                    if mine.state == J.WAITING and mine.created_at < today:
                        carried.append((intent, mine))  # reserved on an earlier day, never sent: billed today
            costs = [estimate(intent.request, rates) for intent, _ in fresh]
            carried_costs = [estimate(intent.request, rates) for intent, _ in carried]
            if (fresh or carried) and self.settings.daily_limit_usd > 0:
                check_daily_limit(spent_today(tx, rates, since=today), costs + carried_costs, self.settings.daily_limit_usd,
                                  node=self.node)
            for intent, job in carried:  # its reservation moves to today, where it will be billed
                tx.redate(job)
                claims[intent.fingerprint] = (_MINE, tx.latest(intent.fingerprint))
            for (intent, job), cost in zip(fresh, costs):
                attempt = job.attempt + 1 if job is not None else 1
                request = intent.request
                tx.add_waiting(intent.fingerprint, attempt, external_id(intent.fingerprint, attempt), owner=self.owner,
                               prompt=request.summary(), base_url=self.client.base_url, node_id=self.node_id,
                               mode=cost.mode, seconds=cost.seconds, video_input=cost.video_input,
                               key_id=self.client.key_id, model=request.model, sound=request.sound,
                               shots=len(request.shots), auto_shots=request.auto_shots)
                claims[intent.fingerprint] = (_NEW, tx.latest(intent.fingerprint))
        for unsent_key in unsent:
            self.journal.never_sent.pop(unsent_key, None)
        return claims

    def claim_slot(self, fingerprint: str, attempt: int) -> tuple:
        """(sent, running, limit, where the limit comes from), in one decision: count this key's tasks in
        flight and, if one more fits, mark the intent sending. Two Submits, in any processes, can never
        both take the last slot."""
        limit, source = self.pace.limit(self.client.key_id, self.settings.max_in_flight)
        self.owners.keep(self.owner)
        marked = None
        try:
            with self.journal.decide() as tx:
                running = self.running(tx)
                if limit is not None and len(running) >= limit:
                    return False, running, limit, source
                if not tx.mark_sending(fingerprint, attempt, self.owner):
                    row = tx.latest(fingerprint)
                    if row is not None and row.attempt == attempt and _has_task(row):
                        return row, running, limit, source  # another run found its task meanwhile: that is it
                    raise JournalError(
                        f"The job journal {self.journal.path} no longer holds this intent as waiting for this run (it "
                        f"was given up, changed or replaced meanwhile), so it was not sent. Queue again: a task made "
                        f"meanwhile is found and reused.", path=self.journal.path)
                marked = tx.stamp
        except JournalError:
            if marked is not None:  # the commit's answer was lost: the row may say sending, yet nothing was sent
                self.journal.never_sent[(fingerprint, attempt)] = marked
            raise
        return True, running, limit, source

    def running(self, source=None) -> list:
        """This key's tasks that hold a slot, made through this host (another host's could never be seen
        to end). A row 'sending' whose run is gone was left by a crash: an unanswered creation, not
        counted (like an uncertain one), or it would hold a slot for a day."""
        rows = (source or self.journal).in_flight(self.client.key_id, since=time.time() - FLIGHT_WINDOW)
        return [job for job in rows if job.base_url == self.client.base_url and job.missing_since is None
                and (job.state != J.SENDING or self.owners.alive(job.owner))]

    # --- the intents ------------------------------------------------------------------

    def settle(self, intent: Intent, job: J.Job) -> OmniTask:
        """The task of an intent this run owns: create it, or find what an unanswered creation made."""
        if job is None:  # reserved a moment ago: the journal was deleted or replaced since
            raise JournalError(f"The job journal {self.journal.path} no longer holds this intent (deleted or replaced "
                               f"while it was in use), so it was not sent. Queue again.", path=self.journal.path)
        if job.state == J.WAITING:  # reserved just now, or left by a run that stopped before sending it
            return self.create(intent, job.attempt)
        task = _resolve_uncertain(job, intent.request, self.journal, self.client)
        if task is not None:
            return task
        # Proven absent: it waits for a slot like any other (its own row must not hold one).
        self.journal.settle(job.fingerprint, job.attempt, J.WAITING, message=job.message)
        return self.create(intent, job.attempt, resend=True)

    def follow(self, intents: list) -> None:
        """Wait until one of these intents, each worked on by another live run, has its task, is given up,
        or its run is gone (then reserve again takes it over)."""
        seen = {i.fingerprint: _state_of(self.journal.latest(i.fingerprint)) for i in intents}

        def moved() -> bool:
            for fingerprint, before in seen.items():
                job = self.journal.latest(fingerprint)
                if job is None or _state_of(job) != before or not self.owners.alive(job.owner):
                    return True
            return False

        waiting_for = (f"another run ({self.journal.OTHER_RUNS}) that is creating "
                       f"{'this same task' if len(intents) == 1 else f'{len(intents)} of these same tasks'}")
        self.slot.wait(self.interval, waiting_for, ready=moved,
                       text=lambda left: f"waiting for {waiting_for} · waited {time.monotonic() - self.slot.start:.0f} s")

    def create(self, intent: Intent, attempt: int, *, resend: bool = False) -> OmniTask:
        journal, client, slot = self.journal, self.client, self.slot
        request, fingerprint = intent.request, intent.fingerprint
        ext = external_id(fingerprint, attempt)
        try:
            while True:
                slot.check_cancel()  # Cancel between two creations of a batch: the rest is never sent
                sent, running, limit, source = self.claim_slot(fingerprint, attempt)
                if isinstance(sent, J.Job):
                    return OmniTask(sent.task_id, request.prompt, fingerprint)
                if not sent:
                    self._wait_for_slot(running, limit, source)
                    continue
                try:  # marked sending: a crash from here on leaves it uncertain
                    state: TaskState = client.create_task(request.payload(external_task_id=ext))
                    break
                except RateLimited as refused:
                    # Nothing was made: back to waiting (its cost still reserved), and learn the account's
                    # limit. Resent under the same external id: nothing exists under it.
                    journal.settle(fingerprint, attempt, J.WAITING, message=str(refused))
                    if refused.code in (1303, None, ""):  # too many at once (1302, "too fast", says nothing of slots)
                        self.pace.refused(client.key_id, len(running), _refusal(refused))
                    slot.pause(refused, len(running), freed=lambda: len(self.running()) < len(running))
        except CreationUncertain as exc:
            journal.settle(fingerprint, attempt, J.UNCERTAIN, message=str(exc))
            raise CreationUncertain(
                f"The creation request was sent but {exc.reason or 'its answer was lost'}, so a task may exist "
                f"and may be billed. It was not resent. Queue again: the pack then looks the task up by its "
                f"external id ({ext}) and collects it, and creates none unless it can prove none exists.",
                external_task_id=ext, status=exc.status, reason=exc.reason) from exc
        except (SlotWaitStopped, JournalError):
            raise  # not sent: still waiting (given up by the run's end), or the journal cannot tell
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
        except JournalError as failed:
            journal.adopt(state.task_id, base_url=client.base_url)  # its row went (a deleted journal): a new one
            try:
                kept = journal.by_task(state.task_id) is not None
            except JournalError:  # the journal cannot be read either: whether it holds the task is unknown
                kept = False
            if not kept:
                raise _paid_unrecorded(failed, state.task_id, ext, journal) from failed
            log.warning("The job journal lost the row of task %s while it was created; it is journalled again as a "
                        "task to collect.", state.task_id)
        journal.learn_echo(client.base_url, state.external_task_id == ext)
        self.pace.accepted(client.key_id, len(running))
        return OmniTask(state.task_id, request.prompt, fingerprint)

    def _wait_for_slot(self, running: list, limit: int, source: str) -> None:
        """Until a slot may be free: another node's journal write (a Poll, the background collector), seen
        within a second, or this run's own status queries of the running tasks every `interval` s."""
        waiting_for = f"one of the {len(running)} running tasks to end (at most {limit} at once: {source})"
        freed = self.slot.wait(self.interval, waiting_for, ready=lambda: len(self.running()) < limit,
                               text=lambda left: (f"waiting for a free slot ({len(running)} running, at most {limit} "
                                                  f"at once) · waited {time.monotonic() - self.slot.start:.0f} s"))
        if not freed:
            _refresh(self.journal, self.client, running, self.slot, waiting_for)


def _nothing_sent(exc: JournalError, journal: Journal) -> JournalError:
    """A journal error before any decision, saying that nothing was sent and what to do (said once)."""
    if "nothing was sent" in str(exc).lower():
        return exc
    return type(exc)(f"{exc} Nothing was sent to CometAPI. {journal.REPAIR}, then queue again.", path=exc.path)


def _paid_unrecorded(failed: JournalError, task_id: str, ext: str, journal: Journal) -> JournalError:
    """The error of a creation that made a task the journal could not record: it names the task to collect."""
    why = failed.__cause__ if isinstance(failed.__cause__, JournalError) else failed  # settle's own advice aside
    error = JournalError(
        f"CometAPI created Kling task {task_id} (it runs and is billed), but the journal could not record it: "
        f"{why} Nothing is sent again for it: queue again once the journal is back and the pack finds task "
        f"{task_id} by its external id ({ext}) and collects it; or collect it now with a CometOmniPoll node, "
        f"its task_id input set to {task_id}.", path=journal.path)
    error.task_id = task_id  # a batch lists it among the tasks it created
    return error


def _state_of(job: Optional[J.Job]) -> tuple:
    return (None,) if job is None else (job.attempt, job.state, job.task_id, job.owner)


def _refresh(journal: Journal, client, running: list, slot: "_SlotWait", waiting_for: str) -> None:
    """Ask how the running tasks are doing, so the ones that ended free their slots."""
    for job in running:
        if not job.task_id:
            continue  # being sent by another Submit right now
        try:
            state = slot.run(client.get_task, job.task_id, waiting_for=waiting_for)
        except NotFound:
            # The host says it knows no such task (expired, made through another route, or a passing error):
            # it would never be seen to end, so it stops holding a slot. It keeps its state: it may have been
            # billed, and the background collector still tries to collect it.
            journal.mark_missing(job.task_id)
            continue
        except OmniError as exc:  # a status query that fails keeps the slot taken; the wait goes on
            log.debug("Status of task %s unknown while waiting for a slot: %s", job.task_id, exc)
            continue
        if state.status != job.state:
            journal.update_task(job.task_id, state=state.status)


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
