"""Turn CometAPI answers into TaskState values or typed errors (contract §4.4, §5.4, §7).

Three status shapes exist in the wild (A Kling-native, B CometAPI wrapper, C wrapper
around a whole Kling envelope) and three error shapes (Kling {code:int}, CometAPI
{"error":{...}}, new-api {"code":"string"}). Everything here is pure: bodies in,
values or exceptions out. Any server text is passed through `redact` first.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from datetime import timezone
from typing import Any, Optional

from . import errors
from .task import ENDED, FAILED, PROCESSING, QUEUED, SUCCEEDED, TaskState, VideoResult

# Both vocabularies (Kling task_status, CometAPI wrapper status) plus the words ComfyUI's
# poller accepts, lower-cased.
_STATUS_WORDS = {
    QUEUED: {"submitted", "not_start", "queued", "queueing", "created", "pending", "unknown"},
    PROCESSING: {"processing", "in_progress", "running"},
    SUCCEEDED: {"succeed", "succeeded", "success", "completed", "finished", "done"},
    FAILED: {"failed", "failure", "fail", "error", "cancelled", "canceled"},
}
_STATUS = {word: status for status, words in _STATUS_WORDS.items() for word in words}

# Words the pack does not know, read by their parts ("RISK_CONTROL_FAILED", "contentModeration"):
# failure-like parts make a failure, unless a part says the task is still on its way
# ("IN_MODERATION", "RISK_REVIEW"): calling a live task failed would make a re-run pay again.
_FAILURE_PARTS = re.compile(
    r"(?:^|_)(?:fail(?:s|ed|ure)?|errors?|cancel(?:l?ed)?|expired?|timeout|timed_out|time_out|reject(?:ed)?"
    r"|block(?:ed)?|moderat(?:ion|ed)|risk|violat(?:ion|ed|es)|sensitive|censor(?:ed|ship)?|abort(?:ed)?"
    r"|deleted?|refused?|den(?:y|ied)|forbidden|illegal|banned)(?=_|$)")
_UNDER_WAY_PARTS = re.compile(r"(?:^|_)(?:in|under|pending|review(?:ing)?|checking|running|processing"
                              r"|progress|queued|waiting)(?=_|$)")
_ENVELOPE_OK = {"", "success", "succeed", "http_ok", "ok"}  # the envelope's message when all went well (§4.4)
# Fields of the wrapper (or task) set once a task has ended (§5.2; other gateways' spellings).
_END_FIELDS = ("finish_time", "finished_at", "end_time", "completed_at")

# Kling business codes (§7.1): (error class, plain-language explanation)
_KLING_CODES = {
    1000: (errors.AuthError, "Kling refused the authentication CometAPI sent for this key"),
    1001: (errors.AuthError, "the request carried no authorization"),
    1002: (errors.AuthError, "the authorization was not valid"),
    1003: (errors.AuthError, "the authorization token is not valid yet"),
    1004: (errors.AuthError, "the authorization token has expired"),
    1100: (errors.QuotaError, "the account has a problem (Kling code 1100): check it in the CometAPI console"),
    1101: (errors.QuotaError, "the account is in arrears: top up your CometAPI balance"),
    1102: (errors.QuotaError, "your resource pack is used up or expired: top up your CometAPI balance"),
    1103: (errors.ForbiddenError, "this key has no permission for this model or resource"),
    1200: (errors.BadRequest, "the request was rejected as invalid"),
    1201: (errors.BadRequest, "a request parameter was rejected"),
    1202: (errors.BadRequest, "the request method is not allowed"),
    1203: (errors.NotFound, "no such task (or resource)"),
    1300: (errors.ContentRejected, "Kling's platform policy refused this request"),
    1301: (errors.ContentRejected, "Kling's content policy refused this prompt or media: change the input"),
    1302: (errors.RateLimited, "requests are coming too fast: slow down"),
    1303: (errors.RateLimited, "too many tasks at once for your plan: wait for running tasks to finish"),
    1304: (errors.ForbiddenError, "the request came from an address outside the account's IP whitelist"),
    5000: (errors.ServerError, "Kling had an internal error"),
    5001: (errors.ServerError, "Kling is temporarily unavailable (maintenance)"),
    5002: (errors.ServerError, "Kling timed out internally (backlog)"),
}

_KEY_HINT = ("CometAPI rejected the key: check COMETAPI_KEY (or the key saved in ComfyUI Settings › CometAPI) "
             "and that COMETAPI_BASE_URL points at CometAPI")
_QUOTA_HINT = ("the key's quota or the account balance is used up: top up, or raise this key's quota "
               "in the CometAPI console")


# --- success bodies ----------------------------------------------------------------------------

def load_json(text: str) -> Any:
    """Parse a body; None when it is not JSON."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def parse_created(body: Any) -> str:
    """The task id of a creation answer: data.task_id, then task_id, then id (§4.4). '' if none."""
    if not isinstance(body, dict):
        return ""
    data = body.get("data")
    for holder, name in ((data, "task_id"), (body, "task_id"), (body, "id")):
        if isinstance(holder, dict) and holder.get(name) not in (None, ""):
            return str(holder[name])
    return ""


def business_error(body: Any, status: int, *, secrets=()) -> Optional[errors.ApiError]:
    """The error an HTTP-200 body carries (Kling code != 0, string code other than success), else None."""
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    failed = ((isinstance(code, int) and not isinstance(code, bool) and code != 0)
              or (isinstance(code, str) and code.strip().lower() not in ("", "0", "success", "ok")))
    if failed or isinstance(body.get("error"), dict):
        return error_from_body(status, body, secrets=secrets)
    return None


def parse_task(body: Any, *, task_id: str = "") -> TaskState:
    """A status answer (any of the three shapes) as a TaskState (§5.4)."""
    if not isinstance(body, dict):
        raise errors.UnexpectedResponse("CometAPI's status answer was not a JSON object")
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    task = _find_task_object(body)
    raw = ""
    if task is not None and isinstance(task.get("task_status"), str):
        raw = task["task_status"]
    elif isinstance(data.get("status"), str):
        raw = data["status"]
    if not raw:
        raise errors.UnexpectedResponse(
            f"CometAPI's status answer for task {task_id or '?'} has no task status "
            f"(top-level keys: {', '.join(sorted(body)) or 'none'})")
    task = task or {}
    word = raw.strip().lower()
    video = _first_video(task.get("task_result"))
    progress = _progress(data.get("progress"))
    status = _STATUS.get(word) or _unknown_word_status(raw, video, progress, data, task)

    message = _text(task.get("task_status_msg")) or _text(data.get("fail_reason"))
    if status == FAILED and not message and _text(body.get("message")).lower() not in _ENVELOPE_OK:
        message = _text(body.get("message"))
    if status in (FAILED, ENDED) and word not in ("failed", "failure", "fail"):  # say which word meant it
        unknown = word not in _STATUS and not _failure_like(raw)
        message = (f"status {raw!r}" + (", a status this pack does not know, ended the task without a video"
                                        if unknown else "") + (f": {message}" if message else ""))
    info = task.get("task_info") if isinstance(task.get("task_info"), dict) else {}
    unit = task.get("final_unit_deduction")
    return TaskState(
        task_id=str(task.get("task_id") or data.get("task_id") or task_id),
        status=status,
        raw_status=raw,
        known=word in _STATUS,
        message=message,
        video=video,
        progress=progress,
        unit_deduction=None if unit in (None, "") else str(unit),
        external_task_id=_text(info.get("external_task_id")),
        created_at=_seconds(task.get("created_at") or data.get("submit_time")),
    )


def _unknown_word_status(raw: str, video, progress, *holders: dict) -> str:
    if video is not None:
        # A video under a word we do not know has been made and paid for: collect it, never lose it.
        return SUCCEEDED
    if _failure_like(raw):
        return FAILED
    ended = (progress is not None and progress >= 100) or any(
        holder.get(name) not in (None, "", 0, "0", False) for holder in holders for name in _END_FIELDS)
    # Ended without a video: the task is over and will not deliver (TaskFailed names the word).
    # Otherwise most likely a new intermediate state: keep waiting, and show the word.
    return ENDED if ended else PROCESSING


def _failure_like(raw: str) -> bool:
    parts = re.sub(r"[^a-z0-9]+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw).lower()).strip("_")
    return bool(_FAILURE_PARTS.search(parts)) and not _UNDER_WAY_PARTS.search(parts)


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """A Retry-After header (delay-seconds or an HTTP-date) as seconds from now; None if absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _find_task_object(body: dict) -> Optional[dict]:
    """The Kling task object: data (A), data.data (B) or data.data.data (C)."""
    node: Any = body
    for _ in range(3):
        node = node.get("data") if isinstance(node, dict) else None
        if isinstance(node, dict) and "task_status" in node:
            return node
    return None


def _first_video(result: Any) -> Optional[VideoResult]:
    if not isinstance(result, dict):  # {} and null both mean "no result yet"
        return None
    videos = result.get("videos")
    if not isinstance(videos, list) or not videos or not isinstance(videos[0], dict):
        return None
    video = videos[0]
    url = _text(video.get("url"))
    if not url:
        return None
    try:
        duration = float(video.get("duration"))
    except (TypeError, ValueError):
        duration = None
    return VideoResult(url=url, id=_text(video.get("id")), duration=duration,
                       watermark_url=_text(video.get("watermark_url")))


def _progress(value: Any) -> Optional[float]:
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return float(str(value).strip().rstrip("%"))
    except ValueError:
        return None


def _seconds(value: Any) -> Optional[float]:
    """Kling reports milliseconds, the wrapper seconds: anything past year 5138 in seconds is ms."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return value / 1000.0 if value > 1e11 else float(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


# --- error bodies --------------------------------------------------------------------------------

def error_from_response(status: int, text: str, *, content_type: str = "", location: str = "",
                        secrets=(), base_url: str = "") -> errors.ApiError:
    """The typed error for a non-2xx answer (or a 2xx that is not the API's JSON)."""
    if 300 <= status < 400:
        return errors.UnexpectedResponse(
            f"CometAPI answered with a redirect{' to ' + errors.redact(location, *secrets) if location else ''} "
            f"instead of JSON: check COMETAPI_BASE_URL (now {base_url or '?'}); "
            f"it should be https://api.cometapi.com", status=status)
    body = load_json(text)
    if not isinstance(body, dict):
        snippet = " ".join(errors.redact(text or "", *secrets).split())[:80]
        if status == 429 or status >= 500:  # a proxy's or CDN's error page (502, 524…): temporary
            cls = errors.RateLimited if status == 429 else errors.ServerError
            return cls(f"CometAPI is temporarily unavailable (HTTP {status}, a non-JSON error page)",
                       status=status)
        return errors.UnexpectedResponse(
            f"CometAPI's answer was not JSON ({content_type or 'no content type'}"
            f"{', starting ' + repr(snippet) if snippet else ''}): check COMETAPI_BASE_URL "
            f"(now {base_url or '?'}); it should be https://api.cometapi.com", status=status)
    return error_from_body(status, body, secrets=secrets)


# How a route or key that lacks a model refuses it, before anything is made: Kling's own refusal
# (1201 bad parameter, 1203 no such resource, 1103 no permission) naming the model, or a gateway's
# code word (new-api lineage answers 503 model_not_found when no channel serves the model: nothing
# was relayed). Never from an answer after which a task may exist (a 5xx of Kling's own, 5000-5002;
# any other 5xx), nor from a refusal that is about something else (1302/1303: too fast, too many).
_MODEL_CODES = {"model_not_found", "model_not_supported", "unsupported_model"}
_KLING_MODEL_CODES = {1103, 1201, 1203}
_NO_CHANNEL = re.compile(r"no available channel|无可用渠道", re.IGNORECASE)
_MODEL_REFUSED = re.compile(r"\bmodel(?:_name)?\b(?!\s*param).{0,80}?\b(?:not (?:supported|found|available|exist)|"
                            r"unsupported|invalid|unknown)\b|\b(?:unsupported|invalid|unknown) model(?:_name)?\b"
                            r"(?!\s*param)", re.IGNORECASE)


def _refuses_model(status: int, code, text: str) -> bool:
    refusal = 400 <= status < 500 and status not in (401, 402, 429)
    if isinstance(code, int) and not isinstance(code, bool):
        return code in _KLING_MODEL_CODES and (refusal or status == 200) and bool(_MODEL_REFUSED.search(text))
    word = code.lower() if isinstance(code, str) else ""
    if refusal or status == 503:
        return word in _MODEL_CODES or bool(_NO_CHANNEL.search(text)) or (refusal and bool(_MODEL_REFUSED.search(text)))
    return False


def error_from_body(status: int, body: dict, *, secrets=()) -> errors.ApiError:
    """Map a JSON error body of any of the three shapes, plus the HTTP status, to an ApiError."""
    envelope = body.get("error") if isinstance(body.get("error"), dict) else None
    if envelope is not None:
        code = envelope.get("code") or envelope.get("type") or None
        server_text = _text(envelope.get("message"))
    else:
        code = body.get("code")
        server_text = _text(body.get("message"))
    request_id = _text(body.get("request_id")) or None
    server_text = errors.redact(server_text, *secrets).strip()
    http = status if status != 200 else None

    def make(cls, explanation):
        text = explanation + (f" (server said: {server_text})" if server_text else "")
        return cls(text, status=http, code=code, request_id=request_id)

    if _refuses_model(status, code, server_text):
        return make(errors.ModelRefused, "the model asked for is not served here")

    if isinstance(code, int) and not isinstance(code, bool) and code in _KLING_CODES:
        cls, explanation = _KLING_CODES[code]
        return make(cls, explanation)
    word = code.lower() if isinstance(code, str) else ""
    if "quota" in word or "insufficient" in word:
        return make(errors.QuotaError, _QUOTA_HINT)
    if word == "invalid_request":  # CometAPI sometimes reports a malformed request as 500
        return make(errors.BadRequest, "CometAPI rejected the request as malformed")
    if status == 401:
        return make(errors.AuthError, _KEY_HINT)
    if status == 402:
        return make(errors.QuotaError, _QUOTA_HINT)
    if status == 403:
        if "quota" in server_text.lower():
            return make(errors.QuotaError, _QUOTA_HINT)
        return make(errors.ForbiddenError, "CometAPI refused this key access to the Kling Omni endpoint")
    if status == 404:
        return make(errors.NotFound, "CometAPI found no such task (or the path is wrong: check COMETAPI_BASE_URL)")
    if status == 429:
        return make(errors.RateLimited, "CometAPI is rate limiting this key: wait and try again")
    if status in (408,) or status >= 500:
        return make(errors.ServerError, f"CometAPI or Kling had a temporary problem (HTTP {status})")
    if 400 <= status < 500:
        return make(errors.BadRequest, "CometAPI rejected the request")
    return make(errors.UnexpectedResponse, "CometAPI answered with an error this pack does not know")
