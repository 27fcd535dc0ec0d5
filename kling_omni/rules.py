"""The contract's rules, checked before anything leaves the machine.

Each failure is an `InputError` naming the node, the input, the value and the limit.
Sources: ../shared/docs/cometapi-omni-api.md §4.1, §4.2, §12 and the judgments of §14.
The rules are per model (kling_omni.models): O1 keeps its own, v3 adds sound and shots.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from .errors import InputError
from .models import MODEL_NAMES, O1, V3, Model, model as model_of
from .request import (ASPECT_RATIOS, IMAGE_ROLES, MAX_SHOT_PROMPT_CHARS, MAX_SHOTS, MIN_SHOT_SECONDS, MODES,
                      REFER_TYPES, OmniRequest, Refs, Shot, Shots)

PROMPT_NODE = "CometOmniPrompt"
SHOT_NODE = "CometOmniShot"
MAX_PROMPT_CHARS = 2500
MAX_REFS = 7  # images + elements
MAX_REFS_WITH_VIDEO = 4
MAX_VIDEOS = 1
INT64_MAX = 2**63 - 1

# <<<image_2>>>, <<<element_1>>>, <<<video_1>>>
TOKEN = re.compile(r"<<<\s*(image|element|video)_(\d+)\s*>>>")
# Kling-app shorthands: @image (= 1), @image2, @element1, @video. Not inside words or e-mails.
SHORTHAND = re.compile(r"(?<![\w@.])@(image|element|video)(\d*)(?![\w])")
# Anything that looks like a token but is not one of the three kinds.
ODD_TOKEN = re.compile(r"<<<[^<>]*>>>")
# Characters that show nothing: control, format (zero-width, BOM, joiners) and separators.
INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}
VIDEO_URL_RULE = "a public http(s) URL of an MP4/MOV (3-10 s, 720-2160 px); local files cannot be sent"


def normalize_prompt(text: str) -> str:
    """The prompt as sent: @ shorthands become <<<kind_N>>>, and every token takes that exact
    form (`<<< image_01 >>>` → `<<<image_1>>>`), the one Kling links to a reference."""
    text = SHORTHAND.sub(lambda m: f"<<<{m.group(1)}_{int(m.group(2) or 1)}>>>", text)
    return TOKEN.sub(lambda m: f"<<<{m.group(1)}_{int(m.group(2))}>>>", text)


def tokens(prompt: str) -> list:
    """[(kind, number)] for every token in a normalised prompt, in order."""
    return [(m.group(1), int(m.group(2))) for m in TOKEN.finditer(prompt)]


def check_prompt_characters(prompt: str, node: str = PROMPT_NODE) -> None:
    """The prompt as typed can be sent as UTF-8: no half of a surrogate pair (a broken paste)."""
    for i, ch in enumerate(prompt):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InputError(node, "prompt", prompt[max(0, i - 20):i + 20],
                             f"character {i + 1} is U+{ord(ch):04X}, half of a character that lost its other half "
                             f"(often a badly copied emoji), which cannot be sent; delete or retype it")


def check_prompt(prompt: str, node: str = PROMPT_NODE, limit: int = MAX_PROMPT_CHARS, what: str = "the video") -> None:
    if is_blank(prompt):
        why = "empty" if not prompt else ("empty: it holds only invisible characters (spaces, zero-width or "
                                          "control characters)")
        raise InputError(node, "prompt", prompt, f"the prompt is {why}; describe {what} (1 to {limit} characters)")
    if len(prompt) > limit:
        raise InputError(node, "prompt", f"{len(prompt)} characters", f"the limit is {limit} characters")


def is_blank(text: str) -> bool:
    """Nothing a person can see: empty, or only spaces and invisible characters."""
    return all(ch.isspace() or unicodedata.category(ch) in INVISIBLE for ch in text)


def prompt_lines(text: str, node: str) -> list:
    """The prompts of a prompt list: one per line, blank lines skipped, each checked as a prompt is
    before its refs are known (characters, length, token syntax). Errors name `node` and the line."""
    lines = []
    for number, line in enumerate(str(text or "").splitlines(), start=1):
        line = line.strip()
        if all(ch.isspace() or unicodedata.category(ch) in INVISIBLE for ch in line):
            continue
        try:
            check_prompt_characters(line)
            text_sent = normalize_prompt(line)
            check_prompt(text_sent)
            check_token_syntax(text_sent)
        except InputError as exc:
            raise InputError(node, f"prompts, line {number}", exc.value, exc.problem) from None
        lines.append(line)
    if not lines:
        raise InputError(node, "prompts", text, "the list is empty: write one prompt per line (blank lines are ignored)")
    return lines


def check_tokens(prompt: str, refs: Refs, node: str = PROMPT_NODE, input: str = "prompt") -> None:
    check_token_counts(prompt, images=len(refs.images), elements=len(refs.elements), videos=len(refs.videos),
                       node=node, input=input)


def check_token_syntax(prompt: str, node: str = PROMPT_NODE) -> None:
    for m in ODD_TOKEN.finditer(prompt):
        if not TOKEN.fullmatch(m.group(0)):
            raise InputError(node, "prompt", m.group(0),
                             "not a reference token; write <<<image_N>>>, <<<element_N>>> or <<<video_1>>> (or @imageN)")


def check_token_counts(prompt: str, *, images: int, elements: int, videos: int, images_exact: bool = True,
                       node: str = PROMPT_NODE, input: str = "prompt") -> None:
    """Every token must point at a wired reference. With `images_exact` False the image count
    is only a minimum (a batch of unknown size), so image tokens are checked only against none."""
    check_token_syntax(prompt, node)
    available = {"image": images, "element": elements, "video": videos}
    for kind, number in tokens(prompt):
        have = available[kind]
        if kind == "image" and not images_exact and have > 0:
            continue
        if number < 1 or number > have:
            wired = f"only {have} {kind}(s) are wired into refs" if have else f"no {kind} is wired into refs"
            raise InputError(node, input, f"<<<{kind}_{number}>>>",
                             f"this token points at nothing: {wired} of {PROMPT_NODE}")


def check_refs(refs: Refs) -> None:
    images, elements, videos = refs.images, refs.elements, refs.videos
    if len(videos) > MAX_VIDEOS:
        raise InputError(PROMPT_NODE, "refs", f"{len(videos)} videos", "Kling takes at most 1 video reference")
    limit = MAX_REFS_WITH_VIDEO if videos else MAX_REFS
    count = len(images) + len(elements)
    if count > limit:
        why = "with a video reference" if videos else "in total"
        raise InputError(PROMPT_NODE, "refs", f"{len(images)} images + {len(elements)} elements",
                         f"at most {limit} images and elements {why}")
    roles = [r.role for r in images]
    for role in ("first_frame", "end_frame"):
        if roles.count(role) > 1:
            raise InputError(PROMPT_NODE, "refs", f"{roles.count(role)} images with role {role}",
                             f"only one {role} image is allowed")
    first, end = refs.first_frame(), refs.end_frame()
    if end is not None and first is None:
        raise InputError(PROMPT_NODE, "refs", "an end_frame without a first_frame",
                         "an end frame needs a first frame; add a CometOmniImageRef with role first_frame")
    if end is not None and len(images) > 2:
        raise InputError(PROMPT_NODE, "refs", f"first + end frame + {len(images) - 2} more images",
                         "an end frame cannot be combined with other reference images")
    base = refs.base_video()
    if base is not None and first is not None:
        raise InputError(PROMPT_NODE, "refs", "a first_frame with a base video",
                         "a video edit (refer_type base) cannot take a first or end frame")


def check_duration(refs: Refs, duration: int, kind: Model) -> None:
    low, high = kind.min_seconds, kind.max_seconds
    if not low <= duration <= high:
        raise InputError(PROMPT_NODE, "duration", duration, f"{kind.name} takes {low} to {high} seconds")
    fixed = kind.fixed_seconds
    if not fixed or duration in fixed or refs.base_video() is not None:
        return
    choices = " or ".join(map(str, fixed))
    first, end = refs.first_frame(), refs.end_frame()
    if not refs.items:
        raise InputError(PROMPT_NODE, "duration", duration,
                         f"{kind.name} text-to-video takes {choices} seconds ({V3} takes {low} to "
                         f"{model_of(V3).max_seconds})")
    if first is not None and end is None and len(refs.items) == 1:
        raise InputError(PROMPT_NODE, "duration", duration,
                         f"with {kind.name} a first frame alone takes {choices} seconds ({low} to {high} with an end "
                         f"frame or other references)")


def check_sound(refs: Refs, sound: bool, kind: Model) -> None:
    if not sound:
        return
    if not kind.sound:
        raise InputError(PROMPT_NODE, "sound", "on", f"{kind.name} makes no sound of its own; pick {V3} in model, "
                                                     f"or turn sound off")
    if refs.videos:
        raise InputError(PROMPT_NODE, "sound", "on with a video reference",
                         "Kling makes no sound when a video goes in (it requires sound off); turn sound off, or "
                         "keep the input video's sound with keep_original_sound on the CometOmniVideoRef")


def check_shots(prompt: str, refs: Refs, duration: int, shots: tuple, auto_shots: bool, kind: Model) -> None:
    """A storyboard: the Prompt's `shots` chain (customised) or `auto_shots` (Kling cuts the prompt)."""
    if not shots and not auto_shots:
        return
    asked = f"{len(shots)} shot(s) linked" if shots else "auto_shots on"
    if not kind.shots:
        raise InputError(PROMPT_NODE, "shots" if shots else "auto_shots", f"{asked} with {kind.name}",
                         f"storyboards need {V3}; pick it in model" + (", or unlink shots" if shots else
                                                                       ", or turn auto_shots off"))
    if shots and auto_shots:
        raise InputError(PROMPT_NODE, "auto_shots", "on, with shots linked",
                         "choose one: your own shots (the shots input) or shots cut by Kling (auto_shots); "
                         "turn auto_shots off or unlink shots")
    if refs.end_frame() is not None:
        raise InputError(PROMPT_NODE, "shots" if shots else "auto_shots", f"{asked} with an end frame",
                         "a storyboard cannot end on an end frame; remove the end_frame image or the shots")
    if refs.base_video() is not None:
        raise InputError(PROMPT_NODE, "shots" if shots else "auto_shots", f"{asked} with a base video edit",
                         "a video edit keeps its input's length and cuts: it takes no shots; use refer_type "
                         "feature, or remove the shots")
    if auto_shots:
        return
    if len(shots) > MAX_SHOTS:
        raise InputError(PROMPT_NODE, "shots", f"{len(shots)} shots", f"a storyboard has at most {MAX_SHOTS} shots")
    for shot in shots:
        check_shot(shot.prompt, shot.duration, shot.origin or SHOT_NODE)
        check_tokens(shot.prompt, refs, node=shot.origin or SHOT_NODE)
    total = sum(s.duration for s in shots)
    if total != duration:
        parts = " + ".join(str(s.duration) for s in shots)
        raise InputError(PROMPT_NODE, "duration", f"{duration} s, with shots of {parts} = {total} s",
                         f"the shots must add up to the Prompt's duration: make them {duration} s in all, or set "
                         f"duration to {total}")


def check_shot(prompt: str, duration: int, node: str = SHOT_NODE) -> None:
    """One CometOmniShot's own inputs (the prompt already normalised)."""
    check_prompt_characters(prompt, node)
    check_prompt(prompt, node, MAX_SHOT_PROMPT_CHARS, "the shot")
    check_token_syntax(prompt, node)
    high = model_of(V3).max_seconds
    if isinstance(duration, bool) or not isinstance(duration, int) or not MIN_SHOT_SECONDS <= duration <= high:
        raise InputError(node, "duration", duration, f"a shot lasts {MIN_SHOT_SECONDS} to {high} seconds")


def check_choice(node: str, input: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise InputError(node, input, value, "one of " + ", ".join(choices))


def build_request(prompt: str, mode: str, aspect_ratio: str, duration: int, refs: Refs | None, *,
                  model: str | None = O1, sound: bool = False, shots: Shots | tuple | None = None,
                  auto_shots: bool = False) -> OmniRequest:
    """Validate the Prompt node's inputs and return the request it outputs.

    `model` None or "" is O1: a prompt saved before models could be chosen."""
    refs = refs or Refs()
    name = model or O1
    check_choice(PROMPT_NODE, "model", name, MODEL_NAMES)
    kind = model_of(name)
    check_choice(PROMPT_NODE, "mode", mode, MODES)
    check_choice(PROMPT_NODE, "aspect_ratio", aspect_ratio, ASPECT_RATIOS)
    items = tuple(shots.items if isinstance(shots, Shots) else shots or ())
    check_prompt_characters(prompt)
    text = normalize_prompt(prompt)
    if not (items and is_blank(text)):  # with shots the Prompt's own text may be empty
        check_prompt(text)
    else:
        text = ""
    check_refs(refs)
    check_duration(refs, int(duration), kind)
    check_sound(refs, bool(sound), kind)
    check_shots(text, refs, int(duration), items, bool(auto_shots), kind)
    check_tokens(text, refs)
    return OmniRequest(prompt=text, mode=mode, aspect_ratio=aspect_ratio, duration=int(duration), refs=refs,
                       model=name, sound=bool(sound), shots=items, auto_shots=bool(auto_shots))


def build_shot(prompt: str, duration: int, node: str = SHOT_NODE) -> Shot:
    """Validate a CometOmniShot's inputs and return its shot."""
    check_prompt_characters(prompt, node)
    text = normalize_prompt(prompt)
    check_shot(text, duration, node)
    return Shot(text, int(duration), node)


def validate_request(request: OmniRequest) -> None:
    """Re-check a request (Submit does, in case it was built by hand)."""
    build_request(request.prompt, request.mode, request.aspect_ratio, request.duration, request.refs,
                  model=request.model, sound=request.sound, shots=request.shots, auto_shots=request.auto_shots)


def parse_element_id(text: object, node: str = "CometOmniElementRef") -> int:
    raw = str(text).strip()
    if not re.fullmatch(r"[0-9]+", raw):  # not str.isdigit: "²" and "٣" are digits to Python, not to Kling
        raise InputError(node, "element_id", text, "an element id is a whole number written with the digits 0-9, "
                                                   "from Kling's element library, e.g. 829836802793406551")
    value = int(raw)
    if not 0 < value <= INT64_MAX:
        raise InputError(node, "element_id", text, "an element id is a positive 64-bit integer")
    return value


def check_video_url(url: str, node: str = "CometOmniVideoRef") -> str:
    url = str(url).strip()
    for i, ch in enumerate(url):
        if ch.isspace() or unicodedata.category(ch) in INVISIBLE | {"Cs"}:
            raise InputError(node, "video_url", url,
                             f"character {i + 1} is {_char_name(ch)}, which a URL cannot hold (write a space as "
                             f"%20, and give one URL only); {VIDEO_URL_RULE}")
    try:
        parsed = urlsplit(url)
        host, _ = parsed.hostname, parsed.port  # both parse lazily and raise on nonsense
    except ValueError as exc:
        raise InputError(node, "video_url", url, f"not a valid URL ({exc}); {VIDEO_URL_RULE}") from None
    if parsed.scheme not in ("http", "https"):
        raise InputError(node, "video_url", url, VIDEO_URL_RULE)
    if not host:
        raise InputError(node, "video_url", url, f"the URL names no host; {VIDEO_URL_RULE}")
    return url


def _char_name(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name else "")


def check_role(role: str, node: str = "CometOmniImageRef") -> None:
    check_choice(node, "role", role, IMAGE_ROLES)


def check_refer_type(refer_type: str, node: str = "CometOmniVideoRef") -> None:
    check_choice(node, "refer_type", refer_type, REFER_TYPES)
