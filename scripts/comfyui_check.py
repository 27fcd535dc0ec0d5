"""Launcher of the end-to-end check, kept for the command people and scripts already use:
`python scripts/comfyui_check.py ARGS` is `python -m scripts.comfy_e2e ARGS` (see that package)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, so `scripts` is a package

from scripts.comfy_e2e.__main__ import main  # noqa: E402

sys.exit(main())
