"""Write locales/<lang>/ (ComfyUI's /i18n: main.json, nodeDefs.json, settings.json) from their sources.

- locales/en/nodeDefs.json: from the node classes (display name, description, every input and
  output with its tooltip), so the English text can never drift from what /object_info says.
- locales/<lang>/settings.json and main.json, every language: from the tables the page's own
  strings live in (web/i18n/<lang>.js), keys settings.*, settingsCategories.* and cometapiOmni.*. The settings' English names are registered from web/i18n/en.js too.
- locales/<lang>/nodeDefs.json for zh, ja, ko are translations, kept by hand;
  tests/test_locales.py holds them to the English keys.

Run: .venv/bin/python scripts/make_locales.py   (--check: exit 1 if a file would change)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.load_pack import load_pack  # noqa: E402

LANGUAGES = ("en", "zh", "ja", "ko")
TABLES = ROOT / "web" / "i18n"
LOCALES = ROOT / "locales"
# Table keys the frontend itself reads (through /i18n); the rest are the page's own strings.
SETTINGS, CATEGORIES = "settings.", "settingsCategories."
MAIN_PREFIXES = ("settingsCategories.", "cometapiOmni.")
# The frontend runs names and descriptions through vue-i18n's message compiler, where these
# characters are syntax; {'@'} is its way of writing one literally.
SPECIAL = re.compile(r"[{}@|]")


def escape(text: str) -> str:
    return SPECIAL.sub(lambda m: "{'" + m.group(0) + "'}", text)


def read_table(language: str) -> dict:
    """A table is one JSON object as a module's default export: Node imports it, Python reads it."""
    source = (TABLES / f"{language}.js").read_text(encoding="utf-8")
    body = re.sub(r"^(\s*//[^\n]*\n)*\s*export default\s*", "", source).rstrip().removesuffix(";")
    return json.loads(body)


def node_defs() -> dict:
    """The English nodeDefs.json: {NodeId: {display_name, description, inputs, outputs}}."""
    pack = load_pack()
    defs = {}
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        inputs = {}
        for part in ("required", "optional"):
            for name, (_, *options) in spec.get(part, {}).items():
                entry = {"name": escape(name)}
                tooltip = (options[0] if options else {}).get("tooltip")
                if tooltip:
                    entry["tooltip"] = tooltip  # shown verbatim by 1.5x, compiled by 1.27: tests forbid the syntax
                inputs[name] = entry
        outputs = {}
        tooltips = getattr(cls, "OUTPUT_TOOLTIPS", ())
        for index, name in enumerate(cls.RETURN_NAMES):
            outputs[str(index)] = {"name": escape(name)}
            if index < len(tooltips) and tooltips[index]:
                outputs[str(index)]["tooltip"] = tooltips[index]
        defs[node_id] = {"display_name": escape(pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]),
                         "description": escape(cls.DESCRIPTION), "inputs": inputs, "outputs": outputs}
    return defs


def settings_json(table: dict) -> dict:
    """{"CometAPI_Omni_Key": {"name": ..., "tooltip": ...}}: the setting id with its dots as _."""
    out: dict = {}
    for key, text in table.items():
        if key.startswith(SETTINGS):
            setting, field = key[len(SETTINGS):].rsplit(".", 1)
            out.setdefault(setting, {})[field] = escape(text)
    return out


def main_json(table: dict) -> dict:
    out: dict = {}
    for key, text in table.items():
        if key.startswith(CATEGORIES):  # the label may hold spaces: it is one key
            out.setdefault("settingsCategories", {})[key[len(CATEGORIES):]] = escape(text)
        elif key.startswith(MAIN_PREFIXES):
            *path, last = key.split(".")
            place = out
            for part in path:
                place = place.setdefault(part, {})
            place[last] = escape(text)
    return out


def files() -> dict[Path, dict]:
    wanted = {LOCALES / "en" / "nodeDefs.json": node_defs()}
    for language in LANGUAGES:
        table = read_table(language)
        wanted[LOCALES / language / "settings.json"] = settings_json(table)
        wanted[LOCALES / language / "main.json"] = main_json(table)
    return wanted


def dump(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for path, data in files().items():
        text = dump(data)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path.relative_to(ROOT))
        if "--check" not in argv:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if "--check" in argv else "written"
    print("\n".join(f"{p}: {verb}" for p in stale) or "locales/ is up to date")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
