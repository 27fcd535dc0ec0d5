import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { snapshotGraph } from "../lib/graph_refs.js";
import {
  MAX_SHOTS, MAX_SHOT_PROMPT_CHARS, MIN_SHOT_SECONDS, describeShots, promptSettings, reviewLines, reviewPrompt, shotsLine,
} from "../lib/prompt_rules.js";
import { MODELS, MODEL_NAMES, NEWEST, UNNAMED } from "../lib/pricing.js";
import { addImage, addPrompt, addShots, addVideo, makeGraph } from "./fake_graph.mjs";

const STORYBOARD = [["An old keeper climbs the stairs", 4], ["He lights the lamp", 3], ["The beam sweeps the sea", 5]];

/** Prompt #1 (v3, 12 s, no text) fed by the storyboard template's three shots. */
function storyboard(shots = STORYBOARD, options = {}) {
  const g = makeGraph();
  addPrompt(g, 1, { prompt: "", duration: 12, ...options });
  addShots(g, 1, shots);
  return g;
}

const review = (g, id = 1) => reviewPrompt(snapshotGraph(g), id);
const problems = (g, id = 1) => review(g, id).problems.map((p) => p.text);

test("the storyboard template: 3 shots, their sum against the Prompt's duration, nothing wrong", () => {
  const r = review(storyboard());
  assert.deepEqual(r.shots.shots.map((s) => [s.number, s.nodeId, s.duration, s.prompt]),
    [[1, 100, 4, STORYBOARD[0][0]], [2, 101, 3, STORYBOARD[1][0]], [3, 102, 5, STORYBOARD[2][0]]]);
  assert.deepEqual(shotsLine(r), { level: "info", text: "3 shots: 4 + 3 + 5 = 12 s of 12 s" });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(reviewLines(r), []);
});

test("a shot's duration changed so the sum is off: the line turns red and says both ways to fix it", () => {
  const g = storyboard();
  g.set(101, "duration", 4);
  const r = review(g);
  assert.deepEqual(shotsLine(r), { level: "error", text: "3 shots: 4 + 4 + 5 = 13 s of 12 s" });
  assert.deepEqual(reviewLines(r).map((l) => l.level), ["error"]);
  assert.deepEqual(r.problems, [{ level: "error", billing: true,
    text: "The shots add up to 4 + 4 + 5 = 13 s, but duration is 12 s: make the shots 12 s in all, or set duration to 13." }]);
  g.set(1, "duration", 13);
  assert.deepEqual(problems(g), []);
  const long = storyboard([["a", 6], ["b", 6], ["c", 6]], { duration: 15 }); // 18 s: no video lasts that long
  assert.deepEqual(problems(long), ["The shots add up to 6 + 6 + 6 = 18 s, but duration is 15 s: make the shots 15 s "
    + "in all (a video lasts 3 to 15 s)."]);
});

test("shots with O1, more than 6 shots, shots and auto_shots together", () => {
  const o1 = storyboard(STORYBOARD, { model: "kling-video-o1" });
  assert.deepEqual(problems(o1), [ // in the order the server checks them
    "duration is 12 s, but kling-video-o1 takes 3 to 10 s: set duration to 10 or less, or pick kling-v3-omni (3 to 15 s) in model.",
    "shots are linked, but kling-video-o1 makes no storyboards: pick kling-v3-omni in model, or unlink shots.",
  ]);
  const seven = storyboard(Array.from({ length: 7 }, (_, i) => [`shot ${i + 1}`, 2]), { duration: 14 });
  assert.deepEqual(problems(seven), ["7 shots are linked; a storyboard has at most 6: remove 1."]);
  assert.equal(shotsLine(review(seven)).text, "7 shots: 2 + 2 + 2 + 2 + 2 + 2 + 2 = 14 s of 14 s");
  const both = storyboard(STORYBOARD, { autoShots: true });
  assert.deepEqual(problems(both), ["shots are linked and auto_shots is on: choose one, your own shots or shots cut by "
    + "Kling; turn auto_shots off or unlink shots."]);
});

test("auto_shots alone: Kling cuts the prompt; with O1 it is refused", () => {
  const g = makeGraph();
  addPrompt(g, 1, { autoShots: true, duration: 10 });
  assert.deepEqual(shotsLine(review(g)), { level: "info", text: "auto_shots: Kling cuts the prompt into shots itself (10 s in all)." });
  assert.deepEqual(problems(g), []);
  g.set(1, "model", "kling-video-o1");
  assert.deepEqual(problems(g), ["auto_shots is on, but kling-video-o1 makes no storyboards: pick kling-v3-omni in model, "
    + "or turn auto_shots off."]);
});

test("a shot's prompt: empty, too long, half a character, tokens checked against the Prompt's refs", () => {
  const g = storyboard([["", 4], ["x".repeat(513), 3], ["<<<image_1>>> waves at @image2 and <<<img>>>", 5]]);
  addImage(g, 50, "reference");
  g.add(51, "LoadImage", { title: "Load Image" });
  g.connect(51, 50, "image");
  g.connect(50, 1, "refs");
  const r = review(g);
  assert.deepEqual(r.problems.map((p) => [p.text, p.billing]), [
    ["Shot 1, Shot #100: its prompt is empty: describe what happens in the shot (1 to 512 characters).", false],
    ["Shot 2, Shot #101: its prompt is 513 characters; the limit is 512.", false],
    ["Shot 3, Shot #102: <<<img>>> is not a token: write <<<image_N>>>, <<<element_N>>> or <<<video_1>>>.", false],
    ["Shot 3, Shot #102: @image2 points at nothing: only 1 image is wired into the Prompt's refs.", false],
  ]);
  // 512 characters as sent (a shorthand becomes a longer token), counted as Python counts them
  g.set(101, "prompt", "é".repeat(512));
  g.set(100, "prompt", "\u200b \u00a0");
  g.set(102, "prompt", "a \ud83d kite");
  assert.deepEqual(problems(g), [
    "Shot 1, Shot #100: its prompt is empty: describe what happens in the shot (1 to 512 characters).",
    "Shot 3, Shot #102: its prompt holds half of a character (often a badly copied emoji), which cannot be sent: delete or retype it.",
  ]);
  g.set(101, "prompt", "🎈".repeat(512)); // 512 characters, 1024 UTF-16 units
  g.set(100, "prompt", "@image1 opens the door");
  g.set(102, "prompt", "ok");
  assert.deepEqual(problems(g), []);
});

test("shots with an end frame or a base video edit are refused", () => {
  const withEnd = storyboard();
  addImage(withEnd, 50, "first_frame", undefined);
  addImage(withEnd, 51, "end_frame", undefined);
  withEnd.connect(50, 51, "refs");
  withEnd.connect(51, 1, "refs");
  assert.ok(problems(withEnd).includes("shots are linked, but a storyboard cannot end on an end frame: remove the "
    + "end_frame image, or unlink shots."), problems(withEnd).join("\n"));
  const edit = storyboard();
  addVideo(edit, 60, "base");
  edit.connect(60, 1, "refs");
  assert.deepEqual(problems(edit), ["shots are linked, but a video edit (refer_type base) keeps its input's length and cuts: "
    + "use refer_type feature, or unlink shots."]);
  edit.set(60, "refer_type", "feature");
  assert.deepEqual(problems(edit), []);
});

test("sound: refused with O1 and with a video reference; fine with v3 alone", () => {
  const g = makeGraph();
  addPrompt(g, 1, { sound: true, duration: 12 });
  assert.deepEqual(problems(g), []);
  addVideo(g, 60, "feature");
  g.connect(60, 1, "refs");
  assert.deepEqual(problems(g), ["sound is on with a video reference, and Kling makes no sound when a video goes in: turn "
    + "sound off (keep_original_sound on the Video Reference keeps the input video's sound)."]);
  const o1 = makeGraph();
  addPrompt(o1, 1, { sound: true, model: "kling-video-o1" });
  assert.deepEqual(review(o1).problems, [{ level: "error", billing: true,
    text: "sound is on, but kling-video-o1 makes no sound of its own: pick kling-v3-omni in model, or turn sound off." }]);
});

test("O1 durations: 3 to 10 s, and 5 or 10 for text only or a first frame alone", () => {
  const g = makeGraph();
  addPrompt(g, 1, { model: "kling-video-o1", duration: 7 });
  assert.deepEqual(problems(g), ["duration is 7 s, but kling-video-o1 text-to-video takes 5 or 10 s: set duration to "
    + "5 or 10, or pick kling-v3-omni (3 to 15 s) in model."]);
  g.set(1, "duration", 10);
  assert.deepEqual(problems(g), []);
  g.set(1, "duration", 12);
  assert.deepEqual(problems(g), ["duration is 12 s, but kling-video-o1 takes 3 to 10 s: set duration to 10 or less, or "
    + "pick kling-v3-omni (3 to 15 s) in model."]);
  g.set(1, "duration", 7);
  addImage(g, 50, "first_frame");
  g.connect(50, 1, "refs");
  assert.deepEqual(problems(g), ["duration is 7 s, but with kling-video-o1 a first frame alone takes 5 or 10 s (3 to 10 "
    + "with an end frame or other references): set duration to 5 or 10, or pick kling-v3-omni (3 to 15 s) in model."]);
  addImage(g, 51, "reference");
  g.connect(50, 51, "refs");
  g.connect(51, 1, "refs");
  assert.deepEqual(problems(g), []); // a first frame and another reference: 3 to 10 s
  g.set(1, "model", "kling-v3-omni");
  g.set(1, "duration", 15);
  assert.deepEqual(problems(g), []);
});

test("an O1 base edit follows its input video: the 5-or-10 rule does not apply, the range does", () => {
  const g = makeGraph();
  addPrompt(g, 1, { model: "kling-video-o1", duration: 7 });
  addVideo(g, 60, "base");
  g.connect(60, 1, "refs");
  assert.deepEqual(problems(g), []);
});

test("settings fed by links are judged when it runs; a Prompt without a model value is O1", () => {
  const g = storyboard(STORYBOARD, { model: "kling-video-o1", sound: true });
  g.add(9, "PrimitiveString", { title: "Model" });
  g.connect(9, 1, "model");
  assert.deepEqual(promptSettings(snapshotGraph(g).nodes[0]).model, { linked: true, value: undefined });
  assert.deepEqual(problems(g), []);
  g.add(8, "PrimitiveInt", { title: "Seconds" });
  g.connect(8, 1, "duration");
  assert.deepEqual(shotsLine(review(g)), { level: "info", text: "3 shots: 4 + 3 + 5 = 12 s (duration is set by a link: it must be 12)." });
  g.connect(8, 101, "duration");
  assert.deepEqual(shotsLine(review(g)), { level: "info", text: "3 shots: 4 + ? + 5 s (a shot's duration is set by a link)." });

  const old = makeGraph();
  old.add(1, "CometOmniPrompt", { widgets: { prompt: "a fox", mode: "pro", aspect_ratio: "16:9", duration: 5 }, inputs: ["refs"] });
  const settings = promptSettings(snapshotGraph(old).nodes[0]);
  assert.deepEqual([settings.model, settings.sound, settings.autoShots, settings.duration],
    [{ linked: false, value: "kling-video-o1" }, { linked: false, value: false }, { linked: false, value: false },
      { linked: false, value: 5 }]);
  old.set(1, "duration", 7);
  assert.match(problems(old)[0], /kling-video-o1 text-to-video takes 5 or 10 s/);
});

test("an unknown model is said plainly", () => {
  const g = makeGraph();
  addPrompt(g, 1, { model: "kling-v9" });
  assert.deepEqual(review(g).problems, [{ level: "error", billing: true,
    text: 'model is "kling-v9", which this version does not know: pick kling-v3-omni or kling-video-o1.' }]);
});

test("the shots chain: reroutes followed, bypassed shots skipped, a muted one cuts the chain, loops end it", () => {
  const g = storyboard();
  g.add(7, "Reroute", { inputs: [""] });
  g.connect(102, 7, "");
  g.connect(7, 1, "shots");
  assert.deepEqual(describeShots(snapshotGraph(g), 1).shots.map((s) => s.nodeId), [100, 101, 102]);
  g.node(101).mode = 4;
  let shots = describeShots(snapshotGraph(g), 1);
  assert.deepEqual(shots.shots.map((s) => [s.number, s.nodeId]), [[1, 100], [2, 102]]);
  assert.deepEqual(shots.notes, ["Shot #101 is bypassed: it is not one of the shots."]);
  assert.equal(shotsLine(review(g)).text, "2 shots: 4 + 5 = 9 s of 12 s");
  g.node(101).mode = 2;
  shots = describeShots(snapshotGraph(g), 1);
  assert.deepEqual(shots.shots.map((s) => [s.number, s.nodeId]), [[1, 102]]);
  assert.deepEqual(shots.notes, ["Shot #101 is muted: Run sends neither it nor the shots before it."]);
  assert.equal(shotsLine(review(g)).text, "1 shot: 5 s of 12 s");
  g.node(102).mode = 2;
  shots = describeShots(snapshotGraph(g), 1);
  assert.deepEqual([shots.wired, shots.linked, shots.shots], [true, false, []]);
  assert.equal(shotsLine(review(g)), null);

  const loop = storyboard();
  loop.connect(102, 100, "shots");
  shots = describeShots(snapshotGraph(loop), 1);
  assert.deepEqual(shots.shots.map((s) => s.nodeId), [100, 101, 102]);
  assert.deepEqual(shots.problems, ["The shots chain loops back to Shot #102: make it a line of Kling Omni Shot nodes."]);
});

test("shots from outside the graph or through another node are known when it runs", () => {
  const g = storyboard();
  g.add(5, "ShotSwitch", { title: "Switch", inputs: ["a"] });
  g.connect(5, 100, "shots");
  let r = review(g);
  assert.equal(r.shots.open, true);
  assert.deepEqual(r.notes, ["shots comes from Switch #5, which is not a Kling Omni Shot node: its shots are known when it runs."]);
  assert.deepEqual(shotsLine(r), { level: "info", text: "3 shots known here: 4 + 3 + 5 s of 12 s (more may come from outside this graph)." });
  assert.deepEqual(r.problems, []); // the sum is not known: nothing certain to refuse

  const inner = makeGraph(); // inside a subgraph: the chain comes in through the subgraph's input node
  addPrompt(inner, 1, { prompt: "", duration: 12 });
  inner.links.set(70, { id: 70, origin_id: -10, origin_slot: 0, target_id: 1 });
  inner.node(1).inputs.find((i) => i.name === "shots").link = 70;
  r = review(inner);
  assert.deepEqual([r.shots.open, r.shots.linked, shotsLine(r)], [true, true, null]);
  assert.deepEqual(r.notes, ["shots comes from outside this graph (a subgraph's input): its shots are known when it runs."]);
});

test("with shots the Prompt's own text is not used: a note says so", () => {
  const g = storyboard(STORYBOARD, { prompt: "a lighthouse at night" });
  assert.deepEqual(review(g).notes, ["With shots, Kling follows each shot's own prompt: the text above is sent but not used."]);
  assert.deepEqual(reviewLines(review(g)), [{ level: "info", text: "With shots, Kling follows each shot's own prompt: the text above is sent but not used." }]);
});

test("the model table and storyboard limits are the server's (tests/model_rules.json, also read by Python)", () => {
  const table = JSON.parse(readFileSync(new URL("../../tests/model_rules.json", import.meta.url), "utf8"));
  assert.deepEqual([...MODEL_NAMES], table.model_names);
  assert.deepEqual([NEWEST, UNNAMED], [table.newest, table.unnamed]);
  const mine = Object.fromEntries(Object.entries(MODELS).map(([name, m]) => [name, { title: m.title, tag: m.tag,
    min_seconds: m.minSeconds, max_seconds: m.maxSeconds, fixed_seconds: [...m.fixedSeconds], sound: m.sound, shots: m.shots }]));
  assert.deepEqual(mine, table.models);
  assert.deepEqual([MAX_SHOTS, MAX_SHOT_PROMPT_CHARS, MIN_SHOT_SECONDS],
    [table.max_shots, table.max_shot_prompt_chars, table.min_shot_seconds]);
});
