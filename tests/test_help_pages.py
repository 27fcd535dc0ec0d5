"""The node library's help pages (web/docs/): the frontend fetches /extensions/<pack>/docs/<NodeId>/<locale>.md,
then /extensions/<pack>/docs/<NodeId>.md (ComfyUI_frontend's nodeHelpService, 1.27 and 1.5x alike), and
resolves a page's relative images against /extensions/<pack>/docs/ whichever file it came from.

Every node has a page in English and in every translated language; each page names every input and
output of its node (a node that gains one fails here until its pages say what it is), shows a
picture that ships beside it, and quotes its errors as the pack raises them.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from scripts.load_pack import load_pack

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "web" / "docs"
LANGUAGES = ("zh", "ja", "ko")
NODES = sorted(load_pack().NODE_CLASS_MAPPINGS)
SECTIONS = {  # the headings every page has, in its language
    "en": ["Inputs", "Outputs", "Example", "Cost", "Common errors"],
    "zh": ["输入", "输出", "示例", "费用", "常见错误"],
    "ja": ["入力", "出力", "例", "料金", "よくあるエラー"],
    "ko": ["입력", "출력", "예시", "비용", "자주 발생하는 오류"],
}
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def page(node: str, language: str) -> Path:
    return DOCS / f"{node}.md" if language == "en" else DOCS / node / f"{language}.md"


def sockets(node: str) -> list[str]:
    cls = load_pack().NODE_CLASS_MAPPINGS[node]
    spec = cls.INPUT_TYPES()
    return [*(name for part in ("required", "optional") for name in spec.get(part, {})), *cls.RETURN_NAMES]


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
@pytest.mark.parametrize("node", NODES)
def test_every_node_has_a_page_naming_every_input_and_output(node, language):
    text = page(node, language).read_text(encoding="utf-8")
    assert text.startswith("# "), "a page starts with the node's name"
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == SECTIONS[language], headings
    missing = [name for name in sockets(node) if f"`{name}`" not in text]
    assert missing == [], f"{page(node, language).relative_to(ROOT)} does not name {missing}"


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
@pytest.mark.parametrize("node", NODES)
def test_pictures_ship_beside_the_pages_and_load_offline(node, language):
    text = page(node, language).read_text(encoding="utf-8")
    images = IMAGE.findall(text)
    assert images, "a page shows the graph of a template"
    for src in images:
        assert not re.match(r"^(?:[a-z]+:|/)", src), f"{src}: relative to docs/, so it loads from this ComfyUI"
        assert (DOCS / src).is_file(), f"{src} is not in web/docs/"
        assert (DOCS / src).stat().st_size < 60_000, f"{src} is over 60 KB"


@pytest.mark.parametrize("node", NODES)
def test_translated_pages_quote_the_same_errors_in_english(node):
    """Errors stay English (searchable, pasted into issues): a translation quotes each one exactly."""
    english = set(re.findall(r"^- `+(.+?)`+", page(node, "en").read_text(encoding="utf-8"), re.MULTILINE))
    assert english
    for language in LANGUAGES:
        quoted = set(re.findall(r"^- `+(.+?)`+", page(node, language).read_text(encoding="utf-8"), re.MULTILINE))
        assert english <= quoted, (language, english - quoted)


def raised(make) -> str:
    try:
        result = make()
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except Exception as exc:  # noqa: BLE001 - the message is what is compared
        return str(exc)
    raise AssertionError("no error raised")


def _errors() -> dict:
    """The errors each page quotes, raised by the pack itself."""
    import torch

    from kling_omni import errors, ledger, pricing, rules
    from kling_omni.images import check_image_size
    from kling_omni.request import Refs, Shots, VideoRef

    nodes = load_pack().NODE_CLASS_MAPPINGS
    v3, o1 = "kling-v3-omni", "kling-video-o1"
    shots = Shots().plus(rules.build_shot("a", 4, "S1")).plus(rules.build_shot("b", 3, "S2"))
    two_videos = Refs().plus(VideoRef("https://example.com/a.mp4", "feature", False, origin="a"),
                             VideoRef("https://example.com/b.mp4", "feature", False, origin="b"))
    one_video = Refs().plus(VideoRef("https://example.com/a.mp4", "feature", False, origin="a"))
    prompt = {
        "empty": lambda: rules.build_request("", "pro", "16:9", 5, None, model=v3),
        "token": lambda: rules.build_request("a <<<image_1>>> cat", "pro", "16:9", 5, None, model=v3),
        "odd token": lambda: rules.build_request("a <<<img_1>>> cat", "pro", "16:9", 5, None, model=v3),
        "o1 length": lambda: rules.build_request("a cat", "pro", "16:9", 7, None, model=o1),
        "o1 sound": lambda: rules.build_request("a cat", "pro", "16:9", 5, None, model=o1, sound=True),
        "shots sum": lambda: rules.build_request("", "pro", "16:9", 10, None, model=v3, shots=shots),
    }
    return {
        "CometOmniPrompt": prompt,
        "CometOmniShot": {
            "empty": lambda: rules.build_shot("", 3, "CometOmniShot #4"),
            "length": lambda: rules.build_shot("x", 20, "CometOmniShot #4"),
            "sum": prompt["shots sum"],
            "o1": lambda: rules.build_request("a cat", "pro", "16:9", 5, None, model=o1, auto_shots=True),
        },
        "CometOmniPromptList": {"empty": lambda: rules.prompt_lines("\n\n", "CometOmniPromptList #2")},
        "CometOmniImageRef": {
            "small": lambda: check_image_size(200, 200, node="CometOmniImageRef #5", input="image"),
            "aspect": lambda: check_image_size(1600, 400, node="CometOmniImageRef #5", input="image"),
            "empty": lambda: nodes["CometOmniImageRef"]().add(torch.zeros((0, 400, 400, 3)), "reference", unique_id="5"),
            "batch": lambda: nodes["CometOmniImageRef"]().add(torch.zeros((4, 400, 400, 3)), "first_frame", unique_id="5"),
        },
        "CometOmniElementRef": {
            "id": lambda: rules.parse_element_id("abc", "CometOmniElementRef #7"),
            "token": lambda: rules.build_request("a <<<element_1>>>", "pro", "16:9", 5, Refs(), model=o1),
        },
        "CometOmniVideoRef": {
            "url": lambda: rules.check_video_url("ftp://x/y.mp4", "CometOmniVideoRef #8"),
            "two": lambda: rules.build_request("a <<<video_1>>>", "pro", "16:9", 5, two_videos, model=o1),
            "sound": lambda: rules.build_request("a <<<video_1>>>", "pro", "16:9", 5, one_video, model=v3, sound=True),
        },
        "CometOmniSubmit": {
            "key": lambda: (_ for _ in ()).throw(errors.KeyMissing()),
            "limit": lambda: ledger.check_daily_limit(9.5, [pricing.cost("pro", 5, False)], 10.0, node="CometOmniSubmit #3"),
            "request": lambda: nodes["CometOmniSubmit"]().submit([None], [0], [1], [30], unique_id=["3"]),
        },
        "CometOmniPoll": {
            "nothing": lambda: nodes["CometOmniPoll"]().poll(unique_id="9"),
            "timeout": lambda: (_ for _ in ()).throw(errors.WaitTimeout("123456", 1800)),
            "failed": lambda: (_ for _ in ()).throw(errors.TaskFailed("123456", "<the reason Kling gave>")),
        },
    }


@pytest.mark.parametrize("node", NODES)
def test_the_quoted_errors_are_what_the_pack_raises(node):
    """Each page quotes, word for word, the errors its node's mistakes raise (they are raised here)."""
    for language in ("en", *LANGUAGES):
        text = page(node, language).read_text(encoding="utf-8")
        for what, make in _errors()[node].items():
            message = raised(make)
            assert message in text, f"{page(node, language).relative_to(ROOT)} ({what}) does not quote: {message}"
