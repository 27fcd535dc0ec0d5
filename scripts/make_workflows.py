"""Write example_workflows/*.json (ComfyUI's UI format) from compact descriptions.

Widget order and sockets come from the pack's own node definitions, so a template can
never disagree with the nodes. Run: .venv/bin/python scripts/make_workflows.py
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.load_pack import load_pack  # noqa: E402

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
# The few core nodes the templates use: (socket inputs, outputs). Widgets are given per use.
CORE = {
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "ImageScale": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "CreateVideo": ([("images", "IMAGE"), ("audio", "AUDIO")], [("VIDEO", "VIDEO")]),
    "SaveVideo": ([("video", "VIDEO")], []),
    "Note": ([], []),
}
PACK_COLOR = {"color": "#223", "bgcolor": "#335"}


class Workflow:
    def __init__(self, defs: dict):
        self.defs = defs
        self.nodes: list = []
        self.links: list = []

    def _sockets(self, type_: str):
        if type_ in CORE:
            return CORE[type_]
        cls = self.defs[type_]
        spec = cls.INPUT_TYPES()
        inputs = [(name, s[0]) for part in ("required", "optional") for name, s in spec.get(part, {}).items()
                  if isinstance(s[0], str) and s[0] not in WIDGET_TYPES]
        return inputs, list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))

    def add(self, type_: str, widgets: list, pos, size=(320, 200), title: str | None = None) -> int:
        node_id = len(self.nodes) + 1
        inputs, outputs = self._sockets(type_)
        node = {
            "id": node_id, "type": type_, "pos": list(pos), "size": list(size), "flags": {},
            "order": node_id - 1, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in inputs],
            "outputs": [{"name": n, "type": t, "links": []} for n, t in outputs],
            "properties": {"Node name for S&R": type_},
            "widgets_values": widgets,
        }
        if title:
            node["title"] = title
        if type_ in self.defs:
            node.update(PACK_COLOR)
        self.nodes.append(node)
        return node_id

    def link_widget(self, src: int, output: str, dst: int, widget: str) -> None:
        """Feed a widget from a link: the input entry the frontend adds for a widget that takes a link."""
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        type_ = next(o["type"] for o in s["outputs"] if o["name"] == output)
        d["inputs"].append({"name": widget, "type": type_, "widget": {"name": widget}, "link": None})
        self.link(src, output, dst, widget)

    def note(self, text: str, pos, size=(380, 260)) -> int:
        return self.add("Note", [text], pos, size, title="About this template")

    def link(self, src: int, output: str, dst: int, input: str) -> None:
        link_id = len(self.links) + 1
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        slot = next(i for i, o in enumerate(s["outputs"]) if o["name"] == output)
        target = next(i for i, x in enumerate(d["inputs"]) if x["name"] == input)
        s["outputs"][slot]["links"].append(link_id)
        d["inputs"][target]["link"] = link_id
        self.links.append([link_id, src, slot, dst, target, s["outputs"][slot]["type"]])

    def json(self) -> dict:
        for node in self.nodes:
            for out in node["outputs"]:
                out["links"] = out["links"] or None
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(self.nodes, sort_keys=True))),
                "revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": self.nodes, "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


POLL_SIZE = (380, 720)  # room for the widgets, the status text and the video preview
POLL_DEFAULTS = ["", 30, 0, 1, 0.0, 0]  # task_id, timeout_minutes, max_frames, every_nth, start_seconds, max_side
KEY_NOTE = ("Set your key once: environment variable COMETAPI_KEY, or Settings › CometAPI. "
            "It is stored on the server, never in this workflow.")


def tail(wf: Workflow, prompt_node: int, x: int, seed: int = 0, poll=None, variations: int = 1) -> tuple:
    """Submit and Poll after a Prompt node; returns (submit, poll) ids."""
    submit = wf.add("CometOmniSubmit", [seed, variations, 30], (x, 0), (300, 160))  # seed, variations, timeout_minutes
    wf.link(prompt_node, "request", submit, "request")
    polled = wf.add("CometOmniPoll", poll or list(POLL_DEFAULTS), (x + 340, 0), POLL_SIZE)
    wf.link(submit, "task", polled, "task")
    return submit, polled


def o1(prompt: str, mode: str, aspect_ratio: str, duration: int) -> list:
    """A Prompt's widgets in the templates made before the model choice: Kling O1, as they ran then."""
    return [prompt, mode, aspect_ratio, duration, "kling-video-o1", False, False]  # model, sound, auto_shots


def v3(prompt: str, mode: str, aspect_ratio: str, duration: int, sound: bool = False, auto_shots: bool = False) -> list:
    return [prompt, mode, aspect_ratio, duration, "kling-v3-omni", sound, auto_shots]


def prompt_and_tail(wf: Workflow, refs_node, widgets: list, x: int, poll=None) -> int:
    """Prompt (fed by refs_node, if any), then Submit and Poll; returns the Poll id."""
    prompt = wf.add("CometOmniPrompt", widgets, (x, 0), (380, 300))
    if refs_node is not None:
        wf.link(refs_node, "refs", prompt, "refs")
    return tail(wf, prompt, x + 420, poll=poll)[1]


def image_chain(wf: Workflow, images: list, refs=None) -> int:
    """Load Image → CometOmniImageRef for each (role, title), chained in order; returns the last ref."""
    for row, (role, title) in enumerate(images):
        y = 360 * row
        loaded = wf.add("LoadImage", ["example.png", "image"], (-420, y), (300, 320), title=title)
        ref = wf.add("CometOmniImageRef", [role], (-80, y), (280, 90))
        wf.link(loaded, "IMAGE", ref, "image")
        if refs is not None:
            wf.link(refs, "refs", ref, "refs")
        refs = ref
    return refs


def text_to_video(defs):
    wf = Workflow(defs)
    wf.note("Text to video with Kling O1 through CometAPI.\n\n1. Write the prompt (5 or 10 s for text only).\n"
            "2. Queue. Submit creates one paid task; Poll waits, saves the MP4 in output/cometapi_omni "
            "and returns frames, audio and video.\n3. Queue again: nothing is paid twice. Change the seed "
            f"on Submit for a new generation.\n\n{KEY_NOTE}", (-420, 0))
    prompt_and_tail(wf, None, o1("A paper boat drifts down a rain-soaked street at dusk, neon reflections",
                               "pro", "16:9", 5), 0)
    return wf


def image_references(defs):
    wf = Workflow(defs)
    wf.note("Image references: each image becomes <<<image_N>>> in the order of the chain "
            "(the image furthest upstream is image_1; a batch adds its images in batch order). "
            "You may write @image1 instead. The Prompt node shows which token is which.\n\n"
            "Up to 7 images and elements (4 with a video). Each side >= 300 px, aspect 1:2.5 to 2.5:1.\n\n"
            + KEY_NOTE, (-420, -320))
    refs = image_chain(wf, [("reference", "Character"), ("reference", "Style")])
    prompt_and_tail(wf, refs, o1("<<<image_1>>> walks through Tokyo at night in the style of <<<image_2>>>",
                               "pro", "16:9", 5), 240)
    return wf


def first_end_frame(defs):
    wf = Workflow(defs)
    wf.note("First and end frame: the video starts on the first image and ends on the second. "
            "No aspect ratio is sent (the first frame fixes it). An end frame needs a first frame and "
            "cannot be mixed with other reference images. 3 to 10 s with an end frame; 5 or 10 with a "
            "first frame alone.\n\n" + KEY_NOTE, (-420, -320))
    refs = image_chain(wf, [("first_frame", "First frame"), ("end_frame", "End frame")])
    prompt_and_tail(wf, refs, o1("the camera slowly pushes in as day turns to night", "pro", "16:9", 5), 240)
    return wf


def elements(defs):
    wf = Workflow(defs)
    wf.note("Elements: reusable subjects from Kling's element library, referenced as <<<element_N>>> "
            "(or @element1). Paste the numeric ids of your own or preset elements; every digit is kept.\n\n"
            + KEY_NOTE, (-420, -300))
    e1 = wf.add("CometOmniElementRef", ["829836802793406551"], (-80, 0), (300, 90))
    e2 = wf.add("CometOmniElementRef", ["829836802793406552"], (-80, 140), (300, 90))
    wf.link(e1, "refs", e2, "refs")
    prompt_and_tail(wf, e2, o1("<<<element_1>>> hands a red umbrella to <<<element_2>>> in the rain",
                             "std", "9:16", 6), 260)
    return wf


def video_edit(defs):
    wf = Workflow(defs)
    wf.note("Video edit (refer_type base): Kling changes the input video and keeps its length and frame, "
            "so duration and aspect ratio are not sent. keep_original_sound keeps its audio, which comes "
            "back on Poll's audio output. The video must be a public http(s) URL (MP4/MOV, 3-10 s, "
            "720-2160 px). Up to 4 images and elements alongside.\n\n" + KEY_NOTE, (-420, -320))
    refs = image_chain(wf, [("reference", "Crown")])
    video = wf.add("CometOmniVideoRef", ["https://example.com/your-clip.mp4", "base", True], (-80, 140), (300, 130))
    wf.link(refs, "refs", video, "refs")
    prompt_and_tail(wf, video, o1("Put the crown from <<<image_1>>> on the girl in blue in <<<video_1>>>",
                                "pro", "16:9", 5), 260)
    return wf


def video_reference(defs):
    wf = Workflow(defs)
    wf.note("Video reference (refer_type feature): use a clip as a reference, e.g. to generate the next "
            "shot. Aspect ratio and duration (3-10 s) apply. The video must be a public http(s) URL.\n\n"
            + KEY_NOTE, (-420, -300))
    video = wf.add("CometOmniVideoRef", ["https://example.com/your-clip.mp4", "feature", False], (-80, 0), (300, 130))
    prompt_and_tail(wf, video, o1("Based on <<<video_1>>>, generate the next shot: the door opens",
                                "pro", "16:9", 5), 260)
    return wf


def collect_by_id(defs):
    wf = Workflow(defs)
    wf.note("Collect a task by id: paste the id of any task of your account (one you stopped waiting for, "
            "one from another machine or the command line) into task_id and queue. A task already "
            "downloaded by this ComfyUI is served from disk: no request, no download, nothing paid.\n\n"
            "From a terminal: python -m kling_omni tasks / collect TASK_ID\n\n" + KEY_NOTE, (-420, 0))
    wf.add("CometOmniPoll", ["paste-a-task-id-here", 30, 0, 1, 0.0, 0], (0, 0), POLL_SIZE)
    return wf


def local_pipeline(defs):
    wf = Workflow(defs)
    wf.note("Chaining with local pipelines: any IMAGE can be a reference (here Load Image → resize). "
            "Poll decodes only what you need: 48 frames, every 2nd frame, longest side 960 px, straight "
            "into one tensor. Its frames and audio feed core nodes (Create Video → Save Video) at the "
            "reduced fps (24 / 2 = 12).\n\n" + KEY_NOTE, (-760, -320))
    img = wf.add("LoadImage", ["example.png", "image"], (-760, 0), (300, 320))
    scale = wf.add("ImageScale", ["lanczos", 1280, 720, "center"], (-420, 0), (300, 140))
    wf.link(img, "IMAGE", scale, "image")
    ref = wf.add("CometOmniImageRef", ["first_frame"], (-80, 0), (280, 90))
    wf.link(scale, "IMAGE", ref, "image")
    polled = prompt_and_tail(wf, ref, o1("the scene comes alive, leaves drifting in the wind", "std", "16:9", 5),
                             240, poll=["", 30, 48, 2, 0.0, 960])
    create = wf.add("CreateVideo", [12.0], (1400, 0), (280, 100))
    wf.link(polled, "frames", create, "images")
    wf.link(polled, "audio", create, "audio")
    save = wf.add("SaveVideo", ["video/kling_preview", "auto", "auto"], (1720, 0), (320, 300))
    wf.link(create, "VIDEO", save, "video")
    return wf


PACE_NOTE = ("Pace: your CometAPI account runs a limited number of tasks at once. Submit never sends more: "
             "past the limit it waits for a free slot (the node says \"waiting for a free slot (3 running)\"; "
             "nothing is created or paid while it waits) and creates the next task when one of yours ends. "
             "The limit is the one set in Settings › CometAPI, or, by default, learned from CometAPI's "
             "answer 429 (Kling code 1303). Cancel stops the wait: the tasks already created run on and are "
             "collected. A daily spend limit (Settings › CometAPI) prices the whole batch before anything is sent.")


def variations(defs):
    wf = Workflow(defs)
    wf.note("Variations: Submit creates 4 tasks of the same request, with seeds 0, 1, 2, 3 (variations = 4). "
            "It costs 4 × the price of one video (here 4 × a 5 s pro video). Poll waits for all 4 at once and "
            "saves each MP4 in output/cometapi_omni; its outputs are lists, one item per variation, and core "
            "nodes downstream run once per item. max_side 512 keeps the frames of 4 clips small in memory.\n\n"
            "Queue again: nothing is sent or paid, the 4 tasks are reused. Raise variations to 6: only 2 more "
            "are paid. A new seed makes new generations.\n\n" + PACE_NOTE + "\n\n" + KEY_NOTE, (-420, -420),
            (380, 480))
    prompt = wf.add("CometOmniPrompt", o1("A paper boat drifts down a rain-soaked street at dusk, neon reflections",
                                          "pro", "16:9", 5), (0, 0), (380, 300))
    tail(wf, prompt, 420, variations=4, poll=["", 30, 0, 1, 0.0, 512])
    return wf


def prompt_list(defs):
    wf = Workflow(defs)
    wf.note("Prompt list: one prompt per line (blank lines are ignored). The Prompt node runs once per line "
            "(each line checked on its own, with the same settings and references), and Submit creates one "
            "task per line, as one batch: here 3 tasks, 3 × the price of one 5 s std video. Set variations on "
            "Submit for several tasks of each line (lines × variations). Poll returns one item per task.\n\n"
            "Queue again: nothing is sent or paid. Add a line: only that line is paid.\n\n" + PACE_NOTE
            + "\n\n" + KEY_NOTE, (-420, -420), (380, 480))
    lines = wf.add("CometOmniPromptList", ["a red kite over the dunes at sunrise\n"
                                           "a paper boat on a rain-soaked street at dusk\n"
                                           "a lighthouse in a storm, waves crashing"], (0, 0), (380, 200))
    prompt = wf.add("CometOmniPrompt", o1("", "std", "16:9", 5), (420, 0), (380, 300))
    wf.link_widget(lines, "prompts", prompt, "prompt")
    tail(wf, prompt, 840, poll=["", 30, 0, 1, 0.0, 512])
    return wf


def v3_sound(defs):
    wf = Workflow(defs)
    wf.note("Kling 3.0 Omni, text to video with native sound: model kling-v3-omni, sound on. Kling makes the "
            "sound itself (speech with lip sync, ambience, effects); it comes out of Poll's audio output and "
            "stays in the saved MP4 and the video output.\n\nv3 takes 3 to 15 s in every mode. Here: 12 s, "
            "pro (1080p) with sound, ≈ $1.68 at the shipped rates (0.14 $/s; without sound 0.112). Sound is "
            "not available with a video reference.\n\nPoll's max_side 960 keeps the 288 frames at a quarter "
            "of the memory (≈ 1.6 GB instead of 6.4 GB as float32).\n\n" + KEY_NOTE, (-420, 0), (380, 420))
    prompt_and_tail(wf, None, v3("A street musician plays a slow blues on a saxophone under a bridge at night, "
                                 "rain dripping, a passer-by drops a coin and says \"beautiful\"",
                                 "pro", "16:9", 12, sound=True), 0, poll=["", 30, 0, 1, 0.0, 960])
    return wf


def v3_storyboard(defs):
    wf = Workflow(defs)
    wf.note("A storyboard with Kling 3.0 Omni: three Kling Omni Shot nodes chained into the Prompt's shots "
            "input make one video of 3 shots, in chain order (the shot furthest upstream is shot 1), each with "
            "its own prompt and length. Their lengths (4 + 3 + 5 s) add up to the Prompt's duration (12 s), "
            "which is what the video bills: 12 s pro ≈ $1.34. Up to 6 shots, each prompt up to 512 "
            "characters; the Prompt's own text may stay empty. The Prompt node shows the shots and their "
            "total as you edit.\n\nOr let Kling cut one prompt into shots itself: unlink shots and turn "
            "auto_shots on.\n\n" + KEY_NOTE, (-840, -480), (380, 440))
    texts = [("An old lighthouse keeper climbs the spiral stairs with a lantern", 4),
             ("Close-up: he lights the great lamp; the lens starts to turn", 3),
             ("Wide shot from the sea: the beam sweeps over crashing waves at night", 5)]
    shots = None
    for row, (text, seconds) in enumerate(texts):
        shot = wf.add("CometOmniShot", [text, seconds], (-420, 230 * row), (380, 200), title=f"Shot {row + 1}")
        if shots is not None:
            wf.link(shots, "shots", shot, "shots")
        shots = shot
    prompt = wf.add("CometOmniPrompt", v3("", "pro", "16:9", 12), (0, 0), (380, 300))
    wf.link(shots, "shots", prompt, "shots")
    tail(wf, prompt, 420, poll=["", 30, 0, 1, 0.0, 960])
    return wf


# File name: (build, the chain drawn on the card). Browse Templates shows a custom node pack's
# template by its file name alone, as its title and (with - and _ as spaces) its description:
# neither 1.27 nor 1.5x reads a title from anywhere else for a pack (useTemplateWorkflows:
# getTemplateTitle, getTemplateDescription). So the name is the sentence a person reads; the card
# draws it too. No - or _ in it (the description would lose them), nothing a URL must escape.
TEMPLATES = {
    "Kling 3.0 text to video with sound": (v3_sound, ["Prompt v3", "Submit", "Poll"]),
    "Kling 3.0 storyboard in three shots": (v3_storyboard, ["Shot 1", "Shot 2", "Shot 3", "Prompt", "Poll"]),
    "Kling O1 text to video": (text_to_video, ["Prompt", "Submit", "Poll"]),
    "Kling O1 video from image references": (image_references, ["Images", "Prompt", "Submit", "Poll"]),
    "Kling O1 video from a first and an end frame": (first_end_frame, ["First", "End", "Prompt", "Poll"]),
    "Kling O1 video with elements from your library": (elements, ["Elements", "Prompt", "Submit", "Poll"]),
    "Kling O1 edit of an input video": (video_edit, ["Image", "Video", "Prompt", "Poll"]),
    "Kling O1 next shot from a reference video": (video_reference, ["Video", "Prompt", "Submit", "Poll"]),
    "Kling O1 in a local pipeline, frames in and out": (local_pipeline, ["Load", "Resize", "Kling", "Frames", "Save"]),
    "Kling O1 variations, four tasks in one run": (variations, ["Prompt", "Submit x4", "Poll x4"]),
    "Kling O1 prompt list, one task per line": (prompt_list, ["Lines", "Prompt", "Submit", "Poll"]),
    "Collect a Kling task by its id": (collect_by_id, ["task id", "Poll"]),
}


def _wrap(text: str, fits) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and fits(f"{lines[-1]} {word}"):
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def thumbnail(title: str, chain: list, path: Path) -> None:
    """The card Browse Templates shows: the title and the chain of nodes."""
    from PIL import Image, ImageDraw, ImageFont
    size = 512
    card = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(card)
    for y in range(size):  # a dusk gradient
        t = y / size
        draw.line([(0, y), (size, y)], fill=(int(20 + 40 * t), int(24 + 20 * t), int(48 + 60 * t)))
    small = ImageFont.load_default(size=22)
    # The title is a sentence: as large as fits in three lines.
    for big in (ImageFont.load_default(size=n) for n in range(40, 12, -2)):
        lines = _wrap(title, lambda text: draw.textlength(text, font=big) <= size - 64)
        if len(lines) <= 3:
            break
    # The pack's name at the foot: 1.5x lays a "Graph" badge over the card's top left corner.
    draw.text((32, 440), "Kling Omni · CometAPI", font=small, fill=(170, 180, 230))
    for row, text in enumerate(lines):
        draw.text((32, 80 + row * int(big.size * 1.25)), text, font=big, fill=(255, 255, 255))
    box_w = (size - 64 - 14 * (len(chain) - 1)) // len(chain)
    for i, name in enumerate(chain):
        x = 32 + i * (box_w + 14)
        draw.rounded_rectangle([x, 300, x + box_w, 380], radius=10, fill=(51, 51, 85), outline=(120, 130, 210), width=2)
        draw.text((x + box_w / 2, 340), name, font=small, fill=(230, 230, 255), anchor="mm")
        if i:
            draw.line([(x - 14, 340), (x, 340)], fill=(160, 200, 120), width=3)
    card.save(path, quality=88)


def main() -> None:
    defs = load_pack().NODE_CLASS_MAPPINGS
    out = ROOT / "example_workflows"
    out.mkdir(exist_ok=True)
    for name, (build, chain) in TEMPLATES.items():
        (out / f"{name}.json").write_text(json.dumps(build(defs).json(), indent=2) + "\n")
        thumbnail(name, chain, out / f"{name}.jpg")
        print(out / f"{name}.json")


if __name__ == "__main__":
    main()
