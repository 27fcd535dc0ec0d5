"""Run a child process to which file modes apply, even when the tests run as root.

Root ignores file modes, so a read-only journal or an unreadable folder cannot be shown to a
root process. Dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set
(prctl PR_CAPBSET_DROP) before exec takes that power away from the child, which then meets a
read-only file as a normal user does. Without root the drop fails harmlessly: modes apply anyway.
"""

from __future__ import annotations

import sys

_DROP_AND_EXEC = """
import ctypes, os, sys
try:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP
except (OSError, AttributeError):
    pass
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


def python_command(*args: str) -> list:
    """argv for `python ARGS...` in a child bound by file modes."""
    return [sys.executable, "-c", _DROP_AND_EXEC, *args]
