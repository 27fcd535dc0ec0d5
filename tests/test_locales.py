"""locales/ (ComfyUI's /i18n) and the page's tables (web/i18n/): generated where they can be, complete
in every language, and safe for the frontend's message compiler.

English is generated (scripts/make_locales.py) from the node classes and from web/i18n/en.js: a node
that gains an input, an output or a tooltip fails here until locales/ is regenerated, and then until
zh, ja and ko translate it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scripts import make_locales
from scripts.load_pack import load_pack

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
TRANSLATED = [lang for lang in make_locales.LANGUAGES if lang != "en"]
FILES = ("main.json", "nodeDefs.json", "settings.json")
# vue-i18n syntax; compiled text may hold them only escaped as {'@'}.
ESCAPED = re.compile(r"\{'[{}@|]'\}")
SPECIAL = re.compile(r"[{}@|]")


def load(language: str, name: str) -> dict:
    return json.loads((LOCALES / language / name).read_text(encoding="utf-8"))


def leaves(data, path=()):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key), value


def test_generated_files_are_up_to_date():
    stale = [str(path.relative_to(ROOT)) for path, data in make_locales.files().items()
             if not path.exists() or json.loads(path.read_text(encoding="utf-8")) != data]
    assert stale == [], "run scripts/make_locales.py"


def test_english_covers_every_node_input_output_and_tooltip():
    pack = load_pack()
    defs = load("en", "nodeDefs.json")
    assert set(defs) == set(pack.NODE_CLASS_MAPPINGS)
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        inputs = {name: options for part in ("required", "optional") for name, (_, *options) in spec.get(part, {}).items()}
        entry = defs[node_id]
        assert entry["display_name"] and entry["description"]
        assert set(entry["inputs"]) == set(inputs), node_id
        for name, options in inputs.items():
            assert entry["inputs"][name]["name"]
            assert ("tooltip" in entry["inputs"][name]) == bool(options and options[0].get("tooltip")), (node_id, name)
        assert [int(i) for i in entry["outputs"]] == list(range(len(cls.RETURN_NAMES)))
        assert all(o.get("name") and o.get("tooltip") for o in entry["outputs"].values()), node_id


@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("name", FILES)
def test_every_language_has_exactly_the_english_keys(language, name):
    english = {path for path, _ in leaves(load("en", name))}
    translated = {path for path, _ in leaves(load(language, name))}
    assert sorted(english - translated) == [], f"untranslated in locales/{language}/{name}"
    assert sorted(translated - english) == [], f"unknown keys in locales/{language}/{name}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_are_translated_and_keep_the_tokens(language):
    english = dict(leaves(load("en", "nodeDefs.json")))
    for path, text in leaves(load(language, "nodeDefs.json")):
        assert isinstance(text, str) and text.strip(), (language, path)
        # Reference tokens and model names are what a person types and reads in errors: kept as they are.
        for token in re.findall(r"<<<\w+>>>|kling-v3-omni|kling-video-o1", english[path]):
            assert token in text, (language, path, token)
        if path[-1] == "description":
            assert text != english[path], (language, path, "left in English")


@pytest.mark.parametrize("language", make_locales.LANGUAGES)
def test_text_the_frontend_compiles_holds_no_raw_syntax(language):
    """Names, descriptions, settings and main.json go through vue-i18n's compiler (1.27 and 1.5x);
    tooltips are compiled by 1.27 and shown verbatim by 1.5x, so they hold no such character at all."""
    problems = []
    for name in FILES:
        for path, text in leaves(load(language, name)):
            raw = ESCAPED.sub("", text) if path[-1] != "tooltip" or name != "nodeDefs.json" else text
            if SPECIAL.search(raw):
                problems.append((name, path, text))
    assert problems == []


def test_every_setting_of_the_page_is_named_in_every_language():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "web").glob("*.js"))
    ids = set(re.findall(r"""\bid:\s*"(CometAPI\.Omni\.[\w.]+)\"""", source))
    categories = set(re.findall(r'"([^"]+)"', " ".join(re.findall(r"category:\s*\[([^\]]*)\]", source))))
    categories |= set(re.findall(r'"([^"]+)"', " ".join(re.findall(r"const CATEGORY = \[([^\]]*)\]", source))))
    assert len(ids) == 5 and {"CometAPI", "Spending", "Daily limit"} <= categories
    for language in make_locales.LANGUAGES:
        settings, main = load(language, "settings.json"), load(language, "main.json")
        for setting in ids:
            entry = settings.get(setting.replace(".", "_"), {})
            assert entry.get("name") and entry.get("tooltip"), (language, setting)
        assert categories <= set(main["settingsCategories"]), (language, categories - set(main["settingsCategories"]))
        assert main["cometapiOmni"]["tasksTab"] and main["cometapiOmni"]["tasksLabel"]


def test_the_tables_are_the_same_keys_in_every_language():
    english = make_locales.read_table("en")
    for language in TRANSLATED:
        assert set(make_locales.read_table(language)) == set(english), language
