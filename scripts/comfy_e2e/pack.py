"""The pack under check: its folder (this checkout), its name in custom_nodes, its templates,
and its own pure library (kling_omni) for what the pack shows (prices, money)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_DIR_NAME = "cometapi-kling-omni"
TEMPLATES = REPO / "example_workflows"
OLD_WORKFLOW = REPO / "tests" / "workflows" / "saved_before_models_text_to_video.json"  # 4 Prompt values

if str(REPO) not in sys.path:  # kling_omni and fake_cometapi are imported from this checkout
    sys.path.insert(0, str(REPO))


def template_names() -> list[str]:
    return sorted(p.stem for p in TEMPLATES.glob("*.json"))


def template(name: str) -> dict:
    """A template's UI-format workflow (a fresh copy each time: callers change it)."""
    return json.loads((TEMPLATES / f"{name}.json").read_text(encoding="utf-8"))


def usd(amount: float) -> str:
    """What the pack shows for an amount (kling_omni.pricing.money)."""
    from kling_omni.pricing import money
    return money(amount)
