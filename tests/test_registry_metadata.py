"""What pyproject.toml tells the Comfy Registry: the icon is a file of this repository, square and
at most 400 px, reached by its raw GitHub URL on main, and the pack names the ComfyUI range it
runs on. (`comfy node validate` in test_registry_archive.py checks the fields' syntax.)"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
COMFY = PYPROJECT["tool"]["comfy"]
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]


def test_the_icon_is_a_square_picture_of_this_repository_at_its_raw_url():
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    assert COMFY["Icon"].startswith(prefix), COMFY["Icon"]
    path = COMFY["Icon"].removeprefix(prefix)
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT, capture_output=True)
    assert tracked.returncode == 0, f"{path} is not committed: the raw URL would answer 404"
    with Image.open(ROOT / path) as icon:
        assert icon.format == "PNG"
        assert icon.width == icon.height <= 400


def test_the_pack_names_the_comfyui_versions_it_runs_on():
    # comfy-cli's own pattern for requires-comfyui (registry/config_parser.py validate_version)
    part = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?$")
    assert all(part.match(p.strip()) for p in COMFY["requires-comfyui"].split(","))
    assert "Operating System :: OS Independent" in PYPROJECT["project"]["classifiers"]
