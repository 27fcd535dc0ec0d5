"""What the Comfy Registry's scanner flags, as code: a finding in any file flags the version,
whatever its severity, and a flagged version is never served as the latest.

The scanner (YARA rules over every file of the archive) reads text, so a word in a comment
counts as much as a call. Two passes: Python through `ast` (names survive aliasing and line
breaks), then a regex pass over every text file (comments, strings, JavaScript). Sources:
Comfy-Org/registry-backend#179 (findings in test files flag), ComfyUI-Manager#2927 and
registry-backend#180 (any severity flags), ComfyUI-Manager#3085 (eval).
"""

from __future__ import annotations

import ast
import re

# Modules whose only use is to start processes, load code at run time or run native code.
FLAGGED_MODULES = {
    "subprocess", "multiprocessing", "pty", "runpy", "importlib", "ctypes", "code", "codeop",
    "pickle", "marshal",
}
# Builtins that run or load code from a string.
FLAGGED_BUILTINS = {"eval", "exec", "compile", "__import__"}
# os functions that start a process or replace this one.
FLAGGED_OS = re.compile(r"^(system|popen|exec\w*|spawn\w*|posix_spawn\w*|fork\w*|startfile)$")
# Attribute names that load code or start processes, whatever object they are reached through.
FLAGGED_ATTRIBUTES = {
    "import_module", "exec_module", "load_module", "spec_from_file_location", "Popen",
    "create_subprocess_exec", "create_subprocess_shell",
}

PYTHON_TEXT = {
    "process": re.compile(r"\bsubprocess\b|\bos\s*\.\s*(system|popen|exec\w*|spawn\w*|posix_spawn\w*|fork\w*|startfile)\b"
                          r"|\bPopen\b|create_subprocess_|\bmultiprocessing\b"),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec|compile)\s*\("),
    "dynamic import": re.compile(r"__import__|\bimportlib\b|\bimport_module\b|\brunpy\b"),
    "unpickling": re.compile(r"\bpickle\b|\bmarshal\b"),
}
JS_TEXT = {
    "eval": re.compile(r"(?<![\w$.])eval\s*\("),
    "new Function": re.compile(r"\bnew\s+Function\s*\(|(?<![\w$.])Function\s*\(\s*[\"'`]"),
    "dynamic import": re.compile(r"(?<![\w$.])import\s*\(\s*(?![\"'][^\"'`$]*[\"']\s*\))"),
    "string timer": re.compile(r"\bset(Timeout|Interval)\s*\(\s*[\"'`]"),
    "process": re.compile(r"\bchild_process\b"),
}
# README, templates, pyproject: text the scanner reads too
OTHER_TEXT = {f"python {k}": v for k, v in PYTHON_TEXT.items()} | {f"js {k}": v for k, v in JS_TEXT.items()}


def python_findings(source: str) -> list[str]:
    """Flagged imports, calls and attributes in Python source, as 'line N: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"line {line}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in FLAGGED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in FLAGGED_MODULES:
                found.append(f"line {line}: from {module} import ...")
            elif module == "os":
                found += [f"line {line}: from os import {a.name}" for a in node.names if FLAGGED_OS.match(a.name)]
            elif module == "builtins":
                found += [f"line {line}: from builtins import {a.name}" for a in node.names
                          if a.name in FLAGGED_BUILTINS]
        elif isinstance(node, ast.Name) and node.id in FLAGGED_BUILTINS:
            found.append(f"line {line}: {node.id}")
        elif isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if node.attr in FLAGGED_ATTRIBUTES or (base == "os" and FLAGGED_OS.match(node.attr)) \
                    or (base == "builtins" and node.attr in FLAGGED_BUILTINS):
                found.append(f"line {line}: {base + '.' if base else '.'}{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and node.args[1].value in FLAGGED_BUILTINS | FLAGGED_ATTRIBUTES:
            found.append(f"line {line}: getattr(..., {node.args[1].value!r})")
    return found


def text_findings(name: str, text: str) -> list[str]:
    """Regex matches of the flagged patterns for this kind of file, as 'line N: what: text'."""
    patterns = PYTHON_TEXT if name.endswith(".py") else JS_TEXT if name.endswith((".js", ".mjs")) else OTHER_TEXT
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        found += [f"line {number}: {what}: {line.strip()[:120]}"
                  for what, pattern in patterns.items() if pattern.search(line)]
    return found


def findings(name: str, text: str) -> list[str]:
    """Everything the scanner could flag in one archive file."""
    found = python_findings(text) if name.endswith(".py") else []
    return found + text_findings(name, text)
