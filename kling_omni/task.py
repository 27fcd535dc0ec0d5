"""What the pack knows about a remote task: its id and its last reported state."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .errors import InputError

# The states everything downstream branches on. Raw server words are kept beside them.
QUEUED = "queued"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
# Ended without a video under a status word this pack does not know. It may have been billed,
# so unlike a failure it is not retried on its own: a new seed asks for a new generation.
ENDED = "ended"
TERMINAL = frozenset({SUCCEEDED, FAILED, ENDED})

# A task id goes into a URL path and a file name, so only these: no "/", no "..", no length
# the file system refuses, and no two ids that one file name could stand for.
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
TASK_ID_RULE = "a task id is 1 to 128 letters, digits, '-' or '_'"


def is_task_id(value: object) -> bool:
    return isinstance(value, str) and _TASK_ID.fullmatch(value) is not None


def check_task_id(value: object, node: str, input: str) -> str:
    """`value` if it is a safe task id, else an InputError naming the node (or command) and input."""
    if not is_task_id(value):
        raise InputError(node, input, value, TASK_ID_RULE)
    return value


@dataclass(frozen=True)
class VideoResult:
    url: str
    id: str = ""
    duration: Optional[float] = None  # seconds, as the server reports it
    watermark_url: str = ""


@dataclass(frozen=True)
class TaskState:
    task_id: str
    status: str  # one of QUEUED, PROCESSING, SUCCEEDED, FAILED, ENDED
    raw_status: str = ""  # the server's own word, e.g. "succeed" or "IN_PROGRESS"
    known: bool = True  # False: raw_status is a word this pack does not know (show it as is)
    message: str = ""  # failure reason or status text
    video: Optional[VideoResult] = None
    progress: Optional[float] = None  # 0..100 when the server reports it
    unit_deduction: Optional[str] = None  # Kling's final_unit_deduction
    external_task_id: str = ""
    created_at: Optional[float] = None  # Unix seconds

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class OmniTask:
    """The OMNI_TASK socket value: a created (or collected) task, enough to wait for it."""

    task_id: str
    prompt: str = ""  # for status text and the journal listing
    fingerprint: str = ""  # request fingerprint + seed; empty when collected by id
