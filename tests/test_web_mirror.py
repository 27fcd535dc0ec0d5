"""The browser mirrors the model table and storyboard limits (web/lib/pricing.js, prompt_rules.js): both sides
are tested against tests/model_rules.json, so neither can drift from the other."""

import json
from pathlib import Path

from kling_omni import models, request

TABLE = json.loads((Path(__file__).parent / "model_rules.json").read_text(encoding="utf-8"))


def test_the_model_table_is_the_one_the_browser_mirrors():
    assert list(models.MODEL_NAMES) == TABLE["model_names"]
    assert (models.NEWEST, models.UNNAMED) == (TABLE["newest"], TABLE["unnamed"])
    mine = {name: {"title": m.title, "tag": m.tag, "min_seconds": m.min_seconds, "max_seconds": m.max_seconds,
                   "fixed_seconds": list(m.fixed_seconds), "sound": m.sound, "shots": m.shots}
            for name, m in models.MODELS.items()}
    assert mine == TABLE["models"]


def test_the_storyboard_limits_are_the_ones_the_browser_mirrors():
    assert (request.MAX_SHOTS, request.MAX_SHOT_PROMPT_CHARS, request.MIN_SHOT_SECONDS) == (
        TABLE["max_shots"], TABLE["max_shot_prompt_chars"], TABLE["min_shot_seconds"])
