"""The pack under check: its folder (this checkout), its name in custom_nodes, its templates,
its own pure library (kling_omni) for what the pack shows (prices, money), and its words in each
language (locales/, web/i18n/, web/docs/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_DIR_NAME = "cometapi-kling-omni"
TEMPLATES = REPO / "example_workflows"
OLD_WORKFLOW = REPO / "tests" / "workflows" / "saved_before_models_text_to_video.json"  # 4 Prompt values
V3_SOUND_TEMPLATE = "Kling 3.0 text to video with sound"  # 12 s, pro, sound
V3_STORYBOARD_TEMPLATE = "Kling 3.0 storyboard in three shots"  # 3 Shot nodes, 4 + 3 + 5 s, on a 12 s Prompt

if str(REPO) not in sys.path:  # kling_omni and fake_cometapi are imported from this checkout
    sys.path.insert(0, str(REPO))


LANGUAGES = ("zh", "ja", "ko")  # besides English (locales/<lang>, web/i18n/<lang>.js, web/docs/<NodeId>/<lang>.md)


def template_names() -> list[str]:
    return sorted(p.stem for p in TEMPLATES.glob("*.json"))


def template(name: str) -> dict:
    """A template's UI-format workflow (a fresh copy each time: callers change it)."""
    return json.loads((TEMPLATES / f"{name}.json").read_text(encoding="utf-8"))


def template_nodes(name: str) -> tuple[dict, list[dict]]:
    """A template's Prompt node, and its shots in order (shot 1, the furthest upstream, first)."""
    workflow = template(name)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    origin = {link[0]: link[1] for link in workflow["links"]}  # link id -> the node it comes from
    prompt = next(n for n in workflow["nodes"] if n["type"] == "CometOmniPrompt")
    shots, node = [], prompt
    while True:
        link = next((i.get("link") for i in node.get("inputs", []) if i["name"] == "shots"), None)
        if link is None:
            break
        node = nodes[origin[link]]
        shots.insert(0, node)
    return prompt, shots


def usd(amount: float) -> str:
    """What the pack shows for an amount (kling_omni.pricing.money)."""
    from kling_omni.pricing import money
    return money(amount)


def locale(language: str, name: str) -> dict:
    """What ComfyUI serves at /i18n for the pack, from locales/<language>/<name>.json."""
    return json.loads((REPO / "locales" / language / f"{name}.json").read_text(encoding="utf-8"))


def page_words(language: str) -> dict:
    """The pack's own words on the page in `language` (web/i18n/<language>.js), by key."""
    from scripts.make_locales import read_table
    return read_table(language)


def help_page(node_id: str, language: str) -> str:
    """The Markdown of a node's help page in `language` (web/docs/<NodeId>.md is English)."""
    docs = REPO / "web" / "docs"
    return (docs / (f"{node_id}.md" if language == "en" else f"{node_id}/{language}.md")).read_text(encoding="utf-8")
