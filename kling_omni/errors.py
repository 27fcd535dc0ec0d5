"""Every error the pack raises, as one hierarchy (modelled on requests.exceptions).

Messages are written for the person at the canvas: what went wrong, the value, the
limit, what to do. They never contain the API key; `redact` is applied to any text that
came from the network before it is put in a message.
"""

from __future__ import annotations

import json
import re


class OmniError(Exception):
    """Base of everything this pack raises on purpose."""


# --- before anything is sent -------------------------------------------------------

class InputError(OmniError, ValueError):
    """A node input breaks a rule of the API; nothing was sent.

    The message names the node, the input, the value and the limit.
    """

    def __init__(self, node: str, input: str, value: object, problem: str, *, before_sending: bool = True):
        self.node = node
        self.input = input
        self.value = value
        self.problem = problem
        tail = " Nothing was sent to CometAPI." if before_sending else ""
        super().__init__(f"{node} › {input}: {problem} (got {_short(value)}).{tail}")


class KeyMissing(OmniError):
    """No usable key: none is set, or (KeyInvalid) the one set cannot be a CometAPI key."""

    def __init__(self, where: str = ""):
        hint = (
            "No CometAPI key found. Set the COMETAPI_KEY environment variable before starting "
            "ComfyUI, or open ComfyUI Settings › CometAPI and save your key there "
            "(it is stored on the server, never in the workflow)."
        )
        super().__init__(hint + (f" Looked in: {where}." if where else ""))


class KeyInvalid(KeyMissing):
    """The key found (environment or key file) cannot be sent: it is not printable ASCII
    without whitespace. The message names where it came from and what is wrong, never the key."""

    def __init__(self, source: str, problem: str, fix: str):
        self.source = source
        self.problem = problem
        OmniError.__init__(self, f"The CometAPI key in {source} {problem}, so it cannot be sent: {fix} "
                                 f"A key is printable ASCII without spaces or line breaks. Nothing was sent.")


class KeyRejected(OmniError, ValueError):
    """A key offered for saving cannot be a CometAPI key (empty, several lines, too long).

    The message describes the problem, never the text that was offered.
    """


class SettingsError(OmniError, ValueError):
    """A value for the pack's settings (Settings › CometAPI) breaks its rule; nothing was saved."""

    def __init__(self, setting: str, value: object, rule: str):
        self.setting = setting
        self.value = value
        self.rule = rule
        super().__init__(f"Setting {setting}: {rule} (got {_short(value)}). Nothing was saved.")

    @property
    def what(self) -> str:
        """The problem without "Nothing was saved": for a value read from the file."""
        return f"{self.setting} is {_short(self.value)}, not {self.rule}"


class SettingsUnreadable(OmniError):
    """The daily limit cannot be read from the settings file: Submit refuses, nothing was sent."""

    def __init__(self, node: str, why: str, fix: str = ""):
        fix = fix or ("set the daily limit in Settings › CometAPI › Spending (that saves a good file and keeps the "
                      "damaged one beside it), or repair or delete the file (without it the defaults apply, with "
                      "their daily limit)")
        super().__init__(
            f"{node}: nothing was sent. {why} Submit refuses rather than spend without knowing your limit. "
            f"Fix: {fix}, then queue again.")


class SpendLimitReached(OmniError):
    """Creating the task(s) would take today's spend past the daily limit; nothing was sent."""

    def __init__(self, message: str, *, spent: float, adding: float, limit: float):
        self.spent = spent
        self.adding = adding
        self.limit = limit
        super().__init__(message)


# --- talking to CometAPI -------------------------------------------------------------

class NetworkError(OmniError):
    """No usable HTTP answer: DNS, refused connection, timeout, broken stream."""


class RequestNotSent(OmniError):
    """The HTTP library refused to build the request (a header or URL it cannot encode):
    not one byte left this machine, so nothing was created. Not retryable: it never gets better."""


class ApiError(OmniError):
    """CometAPI (or Kling behind it) answered with an error."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: object = None,
                 request_id: str | None = None):
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after: float | None = None  # seconds: the answer's Retry-After header (set by the client)
        self.detail = message
        parts = [message]
        tags = []
        if status is not None:
            tags.append(f"HTTP {status}")
        if code not in (None, "", 0):
            tags.append(f"code {code}")
        if request_id:
            tags.append(f"request id {request_id}")
        if tags:
            parts.append(f"[{', '.join(tags)}]")
        super().__init__(" ".join(parts))


class AuthError(ApiError):
    """401: the key is missing, malformed or wrong."""


class QuotaError(ApiError):
    """The account or key has no credit left, or is in arrears."""


class ForbiddenError(ApiError):
    """403: this key may not use this model or resource."""


class BadRequest(ApiError):
    """400: the server rejected the request's content."""


class ModelRefused(BadRequest):
    """The route or key does not serve the model asked for (a Kling 1201 naming it, or a gateway's
    model_not_found): refused before anything was made."""

    def for_model(self, model: str) -> "ModelRefused":
        """The same refusal, saying which model and which one to pick instead."""
        from .models import MODELS, O1, V3  # models imports nothing of ours: no cycle, only import order
        other = O1 if model != O1 else V3
        lacks = " (3-10 s, no native sound, no storyboards)" if other == O1 else ""
        title = MODELS[model].title if model in MODELS else model
        refused = ModelRefused(
            f"CometAPI does not serve {model} ({title}) for this key or route: {self.detail}. Nothing was "
            f"created and nothing is billed. Pick {other}{lacks} in CometOmniPrompt › model, or ask CometAPI to "
            f"enable {model} for your key.", status=self.status, code=self.code, request_id=self.request_id)
        refused.model = model
        return refused


class ContentRejected(ApiError):
    """Kling's content or platform policy refused the request."""


class NotFound(ApiError):
    """404 / 1203: no such task (or a wrong base URL)."""


class RateLimited(ApiError):
    retryable = True


class ServerError(ApiError):
    retryable = True


class UnexpectedResponse(ApiError):
    """The answer was not the JSON the contract describes (HTML, redirect, garbage)."""


# --- the life of a task ----------------------------------------------------------------

class CreationUncertain(OmniError):
    """The creation request was sent but its outcome is unknown (timeout, 5xx).

    A task may exist and be billed. The pack does not resubmit on its own.
    """

    def __init__(self, message: str, *, external_task_id: str = "", status: int | None = None,
                 reason: str = ""):
        self.external_task_id = external_task_id  # how to find the task if it exists
        self.status = status
        self.reason = reason  # what happened to the request, in a few words
        super().__init__(message)


class TaskFailed(OmniError):
    """The task ended without a video: failed, or (status "ended") under a word the pack does not know."""

    def __init__(self, task_id: str, reason: str, *, status: str = "failed"):
        self.task_id = task_id
        self.reason = reason
        self.status = status
        tail = ("" if status == "failed" else
                " It may have been billed, so it is not tried again on its own: change the seed on "
                "CometOmniSubmit to ask for a new generation.")
        super().__init__(f"Kling task {task_id} {'failed' if status == 'failed' else 'ended'}: "
                         f"{reason or 'no reason given by the server'}.{tail}")


class WaitStopped(OmniError):
    """Base for a wait that ended before the task did; the task keeps running remotely."""

    def __init__(self, task_id: str, why: str):
        self.task_id = task_id
        super().__init__(
            f"{why} Task {task_id} keeps running on CometAPI (Kling has no cancel). "
            f"Collect it later: put {task_id} in the task_id input of a CometOmniPoll node, "
            f"or run `python -m kling_omni collect {task_id}`."
        )


class WaitTimeout(WaitStopped):
    def __init__(self, task_id: str, seconds: float):
        self.seconds = seconds
        super().__init__(task_id, f"Stopped waiting after {seconds:.0f} s (the timeout).")


class BusyTimeout(WaitTimeout):
    """The timeout passed while another collection of the task (a Poll, the CLI, the background
    collector) held it: that one fetches the video."""

    def __init__(self, task_id: str, seconds: float):
        self.task_id = task_id
        self.seconds = seconds
        # Not WaitStopped's text: the task may well be finished, and is being collected.
        OmniError.__init__(
            self, f"Stopped waiting after {seconds:.0f} s (the timeout): another collection of task {task_id} (another "
                  f"Poll, the command line or the background collector) still holds it, and saves its video. "
                  f"Queue again later to use the saved video, or put {task_id} in a CometOmniPoll node's task_id.")


class WaitCancelled(WaitStopped):
    def __init__(self, task_id: str):
        super().__init__(task_id, "Stopped waiting: cancelled.")


class DownloadTimeout(WaitTimeout):
    """The task finished, but its video did not arrive within the timeout (a stalled or trickling host)."""

    def __init__(self, task_id: str, seconds: float, received: str = ""):
        self.task_id = task_id
        self.seconds = seconds
        got = f" ({received})" if received else ""
        # Not WaitStopped's text: this task does not keep running, it is done and paid for.
        OmniError.__init__(
            self, f"Stopped downloading the video of task {task_id} at the timeout{got}: the file host is "
                  f"too slow or has stalled. Task {task_id} is finished and paid for, and Kling keeps its video "
                  f"for 30 days: queue again, put {task_id} in the task_id input of a CometOmniPoll node, or run "
                  f"`python -m kling_omni collect {task_id}`; give it a longer timeout if the host stays slow.")


class SlotWaitStopped(OmniError):
    """Submit stopped waiting for a free slot (the account is at its limit of tasks in flight).

    What was still waiting was never sent, so nothing is billed for it; tasks of the same
    batch created before are listed (`created`) and run on.
    """

    def __init__(self, why: str, waiting_for: str, advice: str):
        self.why, self.waiting_for, self.advice = why, waiting_for, advice
        self.created, self.wanted, self.elsewhere = (), 1, 0
        self.others = "another Submit, or another ComfyUI on this user folder"
        super().__init__(self._text())

    def in_batch(self, created, wanted: int, elsewhere: int = 0, others: str = "") -> "SlotWaitStopped":
        """The same stop, now also telling what the rest of its batch came to (`elsewhere`: how many of
        them another run is creating; `others`: who such runs may be, in words)."""
        self.created, self.wanted, self.elsewhere = tuple(created), wanted, elsewhere
        self.others = others or self.others
        self.args = (self._text(),)
        return self

    def _text(self) -> str:
        parts = []
        if self.created:
            parts.append(f"{len(self.created)} of {self.wanted} tasks were created ({', '.join(self.created)}): they "
                         f"run on and are collected as usual.")
        if self.elsewhere:
            parts.append(f"{self.elsewhere} {'is' if self.elsewhere == 1 else 'are'} being created by another run on "
                         f"this journal ({self.others}): billed once, there; "
                         f"queue again to collect {'it' if self.elsewhere == 1 else 'them'}.")
        rest = self.wanted - len(self.created) - self.elsewhere
        if rest and (self.created or self.elsewhere):
            parts.append(f"The other {rest} {'was' if rest == 1 else 'were'} not created and {'is' if rest == 1 else 'are'}"
                         f" not billed.")
        elif rest:
            parts.append("Nothing was created and nothing is billed.")
        done = " ".join(parts)
        waiting = f" It was waiting for {self.waiting_for}." if self.waiting_for else ""
        return f"{self.why}{waiting} {done} {self.advice}"


class SlotWaitTimeout(SlotWaitStopped):
    def __init__(self, seconds: float, waiting_for: str):
        self.seconds = seconds
        super().__init__(f"Stopped waiting for a free slot after {seconds:.0f} s without one "
                         f"(CometOmniSubmit's timeout_minutes).", waiting_for,
                         "Queue again once your running tasks have finished, or raise timeout_minutes.")


class SlotWaitCancelled(SlotWaitStopped):
    def __init__(self, waiting_for: str, why: str = "Stopped waiting for a free slot: cancelled."):
        super().__init__(why, waiting_for, "Queue again to try again.")


class CollectionBusy(OmniError):
    """Another collection of this task (a Poll, the CLI, the background collector) holds its lock."""

    def __init__(self, task_id: str):
        self.task_id = task_id
        super().__init__(f"Another collection of task {task_id} is running.")


class DownloadError(OmniError):
    """The finished video could not be fetched or was incomplete."""


class UrlExpired(DownloadError):
    """The result URL answered 403/404/410: it expired or was never valid. A fresh query may give a new one."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)


class BrokenVideo(DownloadError):
    """A file that is not a whole video (empty, an error page, cut short). Never deleted: `kept` is
    where it was moved aside, if it was."""

    def __init__(self, what: str, problem: str, *, kept=None):
        self.problem = problem
        self.kept = kept
        aside = f" It was kept as {kept}." if kept is not None else ""
        super().__init__(f"{what} is not a whole video: {problem}.{aside}")


class DownloadCancelled(OmniError):
    """The user stopped a download; the partial file was removed."""


class DecodeError(OmniError):
    """The downloaded file is not a video PyAV can read."""


class DecodeCancelled(OmniError):
    """Decoding the video was stopped on request (ComfyUI's Cancel); the file is kept."""


# --- the journal on disk -----------------------------------------------------------------

class JournalError(OmniError):
    """The job journal cannot be read or written (read-only, disk full, damaged beyond repair).

    The message names the file; `path` is it.
    """

    def __init__(self, message: str, *, path):
        self.path = path
        super().__init__(message)


class DatabaseUnavailable(JournalError):
    """The shared journal's PostgreSQL cannot be used now (unreachable, refused, no driver, a bad URL).

    The message names the database as postgresql://user@host:port/database, never its password;
    `path` is that same text.
    """


class SchemaTooNew(DatabaseUnavailable):
    """The shared journal's database was made by a newer version of the pack: this one neither reads
    nor writes it."""


# --- helpers ---------------------------------------------------------------------------

_KEYLIKE = re.compile(r"(?i)(bearer\s+)?\bsk-[A-Za-z0-9_-]{8,}")


def redact(text: str, *secrets: str | None) -> str:
    """Remove the given secrets, in every spelling, and anything shaped like a CometAPI key from `text`."""
    if not text:
        return text
    for form in _spellings(secrets):
        text = text.replace(form, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


def _spellings(secrets) -> list:
    """Each secret as an error text may spell it, longest first.

    Libraries quote what they refuse: escaped (repr, ascii, JSON: a line break becomes \\n,
    a typographic quote \\u201c) or as bytes (b'Bearer …'). Each run of printable ASCII of
    8 or more characters is removed on its own too, so no spelling of what surrounds it leaks it.
    """
    forms = set()
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        forms |= {secret, repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1],
                  repr(secret.encode("utf-8", "replace"))[2:-1],
                  repr(secret.encode("latin-1", "replace"))[2:-1]}
        forms |= {part for part in re.split(r"[^\x21-\x7e]+", secret) if len(part) >= 8}
    return sorted((form for form in forms if len(form) >= 4), key=len, reverse=True)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
