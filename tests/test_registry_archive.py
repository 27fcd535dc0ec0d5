"""The archive the Comfy Registry and ComfyUI-Manager users receive, built as `comfy node publish`
builds it: `comfy node pack` (comfy-cli, a dev dependency) in a fresh clone of this repository.
The clone holds HEAD only, so uncommitted files never leak in: commit before trusting a run.

It holds exactly the runtime and every file of it, imports the way ComfyUI imports it, and
gives the Registry's scanner nothing to flag (tests/registry_scan.py). `comfy node validate`,
the check `comfy node publish` runs first, passes without a warning.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import posixpath
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.registry_scan import findings, python_findings, text_findings

ROOT = Path(__file__).resolve().parent.parent

# The runtime set of issue 17: what runs in ComfyUI, the templates, and the pack's papers.
RUNTIME_FILES = {"__init__.py", "README.md", "LICENSE", "pyproject.toml", "requirements.txt"}
RUNTIME_FOLDERS = ("kling_omni/", "nodes/", "web/", "locales/")  # web/ holds the help pages (web/docs/) too
TEMPLATES = "example_workflows/"
NOT_RUNTIME_IN_WEB = ("web/tests/", "web/package.json")  # only `node --test` reads them
PICTURES = (".jpg", ".png")  # binary: the scanner's text rules have nothing to read there


def ships(path: str) -> bool:
    if path in RUNTIME_FILES:
        return True
    if path.startswith(NOT_RUNTIME_IN_WEB):
        return False
    if path.startswith(TEMPLATES):
        return path.endswith((".json", ".jpg"))
    return path.startswith(RUNTIME_FOLDERS)


def _comfy_cli_version() -> str:
    try:
        return importlib.metadata.version("comfy-cli")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _run(command, cwd, env, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of HEAD and an environment for comfy-cli: its own HOME (it writes its config
    there), no telemetry, no prompt, and no GIT_* variables (a git hook's GIT_DIR would make
    `git ls-files` list another repository)."""
    if importlib.util.find_spec("comfy_cli") is None:
        pytest.fail(f"comfy-cli is not installed in {sys.executable}. It is a dev dependency (requirements-dev.txt): "
                    "`make test` installs it, or run `pip install -r requirements-dev.txt`.", pytrace=False)
    top = tmp_path_factory.mktemp("registry")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(top / "home"), XDG_CONFIG_HOME=str(top / "home" / ".config"),
               DO_NOT_TRACK="1", COMFY_NO_TELEMETRY="1")
    repo = top / "cometapi-kling-omni"
    done = _run(["git", "clone", "--quiet", str(ROOT), str(repo)], top, env)
    assert done.returncode == 0, f"cannot clone {ROOT} (the test needs a git checkout):\n{done.stderr}"
    return repo, env


def comfy_node(clone, command: str) -> subprocess.CompletedProcess:
    repo, env = clone
    return _run([sys.executable, "-m", "comfy_cli", "--skip-prompt", "--no-enable-telemetry", "node", command],
                repo, env)


@pytest.fixture(scope="module")
def archive(clone) -> dict[str, bytes]:
    """node.zip as `comfy node pack` built it: {path: content}."""
    done = comfy_node(clone, "pack")
    assert done.returncode == 0, f"comfy node pack (comfy-cli {_comfy_cli_version()}) failed:\n{done.stdout}{done.stderr}"
    with zipfile.ZipFile(clone[0] / "node.zip") as zipped:
        names = zipped.namelist()
        assert len(names) == len(set(names)), "a path twice in the archive"
        return {name: zipped.read(name) for name in names}


def test_the_archive_holds_exactly_the_runtime(clone, archive):
    tracked = _run(["git", "ls-files"], clone[0], clone[1]).stdout.splitlines()
    runtime = {path for path in tracked if ships(path)}
    assert sorted(set(archive) - runtime) == [], "files outside the runtime ship: fix .comfyignore"
    assert sorted(runtime - set(archive)) == [], "runtime files are missing from the archive: fix .comfyignore"
    assert {"__init__.py", "nodes/__init__.py", "kling_omni/__init__.py"} <= set(archive)
    assert any(p.startswith(TEMPLATES) for p in archive) and any(p.startswith("web/lib/") for p in archive)


def test_every_shipped_web_module_finds_the_modules_it_imports(archive):
    """ComfyUI loads each .js under web/ as an ES module: one relative import missing from the
    archive and that module (and whatever imports it) fails in the browser."""
    imports = re.compile(r"""(?:\bfrom|^\s*import)\s*["'](\.{1,2}/[^"']+)["']""", re.MULTILINE)
    missing = []
    for name in (n for n in archive if n.endswith(".js")):
        for target in imports.findall(archive[name].decode("utf-8")):
            path = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if not path.startswith("../") and path not in archive:  # ../ is ComfyUI's own (scripts/app.js)
                missing.append(f"{name} imports {target}")
    assert missing == []


def test_the_unpacked_archive_imports_as_comfyui_imports_it(archive, tmp_path):
    """Unpacked into a custom_nodes folder and imported as a package, as ComfyUI does, every Python
    module of it imports: none depends on a file that does not ship."""
    pack = tmp_path / "custom_nodes" / "cometapi_kling_omni"
    for name, data in archive.items():
        (pack / name).parent.mkdir(parents=True, exist_ok=True)
        (pack / name).write_bytes(data)
    modules = sorted("cometapi_kling_omni." + name[:-3].replace("/", ".").removesuffix(".__init__")
                     for name in archive if name.endswith(".py") and name != "__init__.py")
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(pack.parent)!r})\n"
        "pack = importlib.import_module('cometapi_kling_omni')\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps({'nodes': sorted(pack.NODE_CLASS_MAPPINGS), 'web': pack.WEB_DIRECTORY}))\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "CometOmniSubmit" in loaded["nodes"] and "CometOmniPoll" in loaded["nodes"]
    assert list((pack / loaded["web"]).glob("*.js"))


def test_the_registry_scanner_finds_nothing_in_the_archive(archive):
    found = {}
    for name, data in archive.items():
        if name.endswith(PICTURES):
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            found[name] = ["binary, and not a picture: nothing binary ships but the template thumbnails"]
            continue
        if hits := findings(name, text):
            found[name] = hits
    assert found == {}, "the Registry would flag this version:\n" + json.dumps(found, indent=1)


def test_comfy_node_validate_passes_without_a_warning(clone):
    """`comfy node publish` runs this first: the pyproject's fields, then ruff's S102 (exec),
    S307 (eval) and E702 (statements on one line) over the whole checkout. It only warns today;
    comfy-cli says these will become errors, so a warning fails here."""
    done = comfy_node(clone, "validate")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "All validation checks passed successfully" in said, said
    assert "warning" not in said.lower(), said


# The scan itself, on what it must and must not flag: a scan that finds nothing proves little
# unless it is seen to find things.

FLAGGED_PYTHON = [
    "import subprocess\nsubprocess.run(['ls'])",
    "import os\nos.system('ls')",
    "import os\nos.popen('ls')",
    "import os\nos.execvp('ls', ['ls'])",
    "from os import spawnl",
    "eval('1 + 1')",
    "exec('x = 1')",
    "code = compile('1', 'f', 'eval')",
    "mod = __import__('json')",
    "import importlib\nimportlib.import_module(name)",
    "from importlib import util\nutil.spec_from_file_location('m', 'm.py')",
    "import builtins\nbuiltins.eval('1')",
    "run = getattr(builtins, 'exec')",
    "import asyncio\nasyncio.create_subprocess_exec('ls')",
    "import pickle\npickle.loads(data)",
]
CLEAN_PYTHON = [
    "import re\nTOKEN = re.compile(r'x')",
    "import os\nos.environ.get('HOME')\nos.replace('a', 'b')",
    "def run_in_executor(fn):\n    return fn()",
    "evaluation = 'kept'\nexecutor = None",
]
FLAGGED_JS = [
    "const x = eval(text);",
    "const f = new Function('a', 'return a');",
    "const m = await import(name);",
    "const m = await import(`./lib/${name}.js`);",
    "setTimeout('run()', 10);",
]
CLEAN_JS = [
    'import { app } from "../../scripts/app.js";',
    'const lib = await import("./lib/format.js");',
    "const match = /x(\\d+)/.exec(text);",
    "setTimeout(refresh, 10); api.addEventListener('execution_error', show);",
]


@pytest.mark.parametrize("source", FLAGGED_PYTHON)
def test_the_scan_flags_python_that_starts_processes_or_loads_code(source):
    assert python_findings(source), source
    assert findings("module.py", source), source


@pytest.mark.parametrize("source", CLEAN_PYTHON)
def test_the_scan_leaves_ordinary_python_alone(source):
    assert findings("module.py", source) == []


@pytest.mark.parametrize("source", FLAGGED_JS)
def test_the_scan_flags_javascript_that_runs_strings_or_computed_imports(source):
    assert text_findings("module.js", source), source


@pytest.mark.parametrize("source", CLEAN_JS)
def test_the_scan_leaves_ordinary_javascript_alone(source):
    assert text_findings("module.js", source) == []
