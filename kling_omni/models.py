"""The Kling models the Omni route serves, and what each one can do.

One table, read by the rules (what is refused before sending), the request (what is sent),
the prices and the listings. Sources: ../shared/docs/cometapi-omni-api.md §4.2 (O1) and §12 (v3).
"""

from __future__ import annotations

from dataclasses import dataclass

O1 = "kling-video-o1"
V3 = "kling-v3-omni"


@dataclass(frozen=True)
class Model:
    name: str  # exactly as sent in model_name
    title: str  # for people: "Kling 3.0 Omni"
    tag: str  # short, in price labels and listings: "v3"
    min_seconds: int
    max_seconds: int
    # Text-to-video and a first frame alone take only these lengths (empty: any in range).
    fixed_seconds: tuple = ()
    sound: bool = False  # native sound (`sound: on`)
    shots: bool = False  # storyboards (`multi_shot`)


MODELS = {
    V3: Model(V3, "Kling 3.0 Omni", "v3", 3, 15, sound=True, shots=True),
    O1: Model(O1, "Kling O1", "O1", 3, 10, fixed_seconds=(5, 10)),
}
MODEL_NAMES = tuple(MODELS)  # as the Prompt node offers them: the newest first
NEWEST = V3  # what a Prompt node added in the UI starts on
# A prompt that names no model was saved before models could be chosen: it ran as O1 and still does.
UNNAMED = O1
MAX_SECONDS = max(m.max_seconds for m in MODELS.values())


def model(name: str | None) -> Model:
    """The model of a model_name; an empty or missing name is O1 (older prompts and journals)."""
    return MODELS[name or UNNAMED]


def tag_of(name: str | None) -> str:
    """'v3' / 'O1' for a journalled model name; the name itself for one this version does not know."""
    known = MODELS.get(name or UNNAMED)
    return known.tag if known is not None else str(name)


def features(name: str | None, sound: bool = False, shots: int = 0, auto_shots: bool = False) -> str:
    """'v3 · sound · 3 shots', 'O1': a task's model and what it asked of it, for listings."""
    parts = [tag_of(name)]
    if sound:
        parts.append("sound")
    if shots:
        parts.append(f"{shots} shot{'' if shots == 1 else 's'}")
    elif auto_shots:
        parts.append("auto shots")
    return " · ".join(parts)
