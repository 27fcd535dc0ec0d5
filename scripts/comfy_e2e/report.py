"""PASS/FAIL per check, and the summary."""

from __future__ import annotations


class Report:
    def __init__(self):
        self.results: list[tuple[bool, str, str]] = []

    def check(self, ok, name: str, detail: str = "") -> bool:
        ok = bool(ok)
        self.results.append((ok, name, detail))
        print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def note(self, text: str) -> None:
        print(f"       {text}", flush=True)

    @property
    def failed(self):
        return [r for r in self.results if not r[0]]

    def summary(self) -> int:
        passed = len(self.results) - len(self.failed)
        print("\n" + "=" * 72)
        for ok, name, detail in self.failed:
            print(f"FAIL {name}: {detail}")
        verdict = "PASS" if not self.failed and self.results else "FAIL"
        print(f"{verdict}: {passed} of {len(self.results)} checks passed")
        return 0 if verdict == "PASS" else 1


class CheckFailed(Exception):
    """A failure after which the current run cannot go on."""
