import { test } from "node:test";
import assert from "node:assert/strict";

import { graphPrice, graphPriceText, submitPrice, submitPriceText } from "../lib/graph_price.js";
import { flattenSnapshot, snapshotGraph } from "../lib/graph_refs.js";
import { makeRates } from "../lib/pricing.js";

// A tiny stand-in for litegraph's LGraph (as in graph_refs.test.mjs), with node modes.
function makeGraph() {
  const nodes = [];
  const links = new Map();
  let nextLink = 1;
  return {
    nodes,
    links,
    getLink: (id) => links.get(id),
    add(id, type, { widgets = {}, inputs = [], mode = 0, title = "" } = {}) {
      const node = {
        id, type, comfyClass: type, mode, title,
        widgets: Object.entries(widgets).map(([name, value]) => ({ name, value })),
        inputs: inputs.map((name) => ({ name, link: null })),
      };
      nodes.push(node);
      return node;
    },
    connect(fromId, toId, inputName) {
      const input = nodes.find((n) => n.id === toId).inputs.find((i) => i.name === inputName);
      const id = nextLink++;
      links.set(id, { id, origin_id: fromId, origin_slot: 0, target_id: toId });
      input.link = id;
    },
  };
}

const prompt = (g, id, mode = "pro", duration = 5, extra = {}) =>
  g.add(id, "CometOmniPrompt", { widgets: { prompt: "a kite", mode, aspect_ratio: "16:9", duration }, inputs: ["refs", "prompt", "mode", "duration"], ...extra });
const submit = (g, id, variations = 1, extra = {}) =>
  g.add(id, "CometOmniSubmit", { widgets: { seed: 0, variations, timeout_minutes: 30 }, inputs: ["request", "variations"], ...extra });
const video = (g, id, referType) =>
  g.add(id, "CometOmniVideoRef", { widgets: { video_url: "https://example.com/a.mp4", refer_type: referType, keep_original_sound: true }, inputs: ["refs", "refer_type"] });

function priced(g, id, rates = makeRates()) {
  return submitPrice(snapshotGraph(g), id, rates);
}

test("a Submit shows the mode and seconds exactly and the USD as an estimate", () => {
  const g = makeGraph();
  prompt(g, 1, "pro", 5);
  submit(g, 2);
  g.connect(1, 2, "request");
  const price = priced(g, 2);
  assert.equal(submitPriceText(price), "5 s · pro ≈ $0.56");
  assert.deepEqual([price.usdLow, price.usdHigh, price.tasks], [0.56, 0.56, 1]);
});

test("variations multiply the price", () => {
  const g = makeGraph();
  prompt(g, 1, "pro", 5);
  submit(g, 2, 4);
  g.connect(1, 2, "request");
  assert.equal(submitPriceText(priced(g, 2)), "4 × 5 s · pro ≈ $2.24");
  assert.equal(submitPriceText(priced(g, 2, makeRates({ pro: 0.2 }))), "4 × 5 s · pro ≈ $4.00");
});

test("a video in the refs chain uses the video rates; a base edit is a range over the input's length", () => {
  const g = makeGraph();
  video(g, 5, "feature");
  prompt(g, 1, "std", 7);
  submit(g, 2);
  g.connect(5, 1, "refs");
  g.connect(1, 2, "request");
  assert.equal(submitPriceText(priced(g, 2)), "7 s · std ≈ $0.88");
  g.nodes.find((n) => n.id === 5).widgets.find((w) => w.name === "refer_type").value = "base";
  const edit = priced(g, 2);
  assert.equal(submitPriceText(edit), "length of the input video, 3–10 s · std ≈ $0.38–$1.26");
  assert.deepEqual([edit.usdLow, edit.usdHigh], [0.378, 1.26]);
});

test("a prompt from a link (a prompt list) is priced per prompt", () => {
  const g = makeGraph();
  g.add(9, "CometOmniPromptList", { widgets: { prompts: "a\nb" } });
  prompt(g, 1, "std", 5);
  submit(g, 2, 2);
  g.connect(9, 1, "prompt");
  g.connect(1, 2, "request");
  const price = priced(g, 2);
  assert.equal(price.perPrompt, true);
  assert.equal(submitPriceText(price), "2 × 5 s · std ≈ $0.84 per prompt");
});

test("settings fed by links give the range of what they can be", () => {
  const g = makeGraph();
  prompt(g, 1, "pro", 5);
  submit(g, 2);
  g.add(8, "PrimitiveInt");
  g.connect(8, 1, "duration");
  g.connect(1, 2, "request");
  // A Prompt without a model value is O1, whose text-to-video takes 5 or 10 s (the server refuses the rest).
  assert.equal(submitPriceText(priced(g, 2)), "5 or 10 s (duration set by a link) · pro ≈ $0.56–$1.12");
  g.add(7, "PrimitiveString");
  g.connect(7, 1, "mode");
  assert.equal(submitPriceText(priced(g, 2)), "5 or 10 s (duration set by a link) · std or pro (mode set by a link) ≈ $0.42–$1.12");
  video(g, 5, "feature"); // with a reference, O1 takes 3 to 10 s
  g.connect(5, 1, "refs");
  assert.equal(submitPriceText(priced(g, 2)), "3–10 s (duration set by a link) · std or pro (mode set by a link) ≈ $0.38–$1.68");
});

test("a video whose refer_type comes from a link may be a base edit: the whole range", () => {
  const g = makeGraph();
  video(g, 5, "feature");
  prompt(g, 1, "pro", 5);
  submit(g, 2);
  g.add(6, "PrimitiveString");
  g.connect(6, 5, "refer_type");
  g.connect(5, 1, "refs");
  g.connect(1, 2, "request");
  assert.equal(submitPriceText(priced(g, 2)), "5 s, or the input video's length (refer_type set by a link) · pro ≈ $0.50–$1.68");
});

test("a Submit without a Prompt says what to connect and is not priced", () => {
  const g = makeGraph();
  submit(g, 2);
  let price = priced(g, 2);
  assert.equal(price.problem, "Connect a Kling Omni Prompt to request to see what this Submit bills.");
  assert.equal(submitPriceText(price), price.problem);
  g.add(3, "SomethingElse", { title: "Mystery" });
  g.connect(3, 2, "request");
  price = priced(g, 2);
  assert.match(price.problem, /request comes from Mystery #3/);
});

test("the whole graph: the sum over active Submits times their variations; muted and bypassed ones skipped", () => {
  const g = makeGraph();
  prompt(g, 1, "pro", 5);
  prompt(g, 3, "std", 10);
  submit(g, 2, 4);
  submit(g, 4, 1);
  submit(g, 6, 3, { mode: 4 }); // bypassed
  submit(g, 7, 2, { mode: 2 }); // muted
  submit(g, 8); // nothing connected
  g.connect(1, 2, "request");
  g.connect(3, 4, "request");
  g.connect(1, 6, "request");
  g.connect(1, 7, "request");
  const whole = graphPrice(snapshotGraph(g), makeRates());
  assert.deepEqual([whole.submits, whole.tasks, whole.usdLow, whole.usdHigh, whole.unpriced], [2, 5, 3.08, 3.08, 1]);
  assert.equal(graphPriceText(whole), "Whole graph ≈ $3.08: 2 Submits, 5 tasks (1 Submit not priced)");
  assert.equal(submitPriceText(priced(g, 6)), "Bypassed: bills nothing (when on: 3 × 5 s · pro ≈ $1.68)");
  assert.equal(submitPriceText(priced(g, 7)), "Muted: bills nothing (when on: 2 × 5 s · pro ≈ $1.12)");
});

test("whole-graph wording: one Submit, ranges, prompts per list, nothing to price", () => {
  assert.equal(graphPriceText({ submits: 1, tasks: 1, usdLow: 0.42, usdHigh: 0.42, unpriced: 0, perPrompt: false }),
    "Whole graph ≈ $0.42: 1 Submit, 1 task");
  assert.equal(graphPriceText({ submits: 2, tasks: 2, usdLow: 0.5, usdHigh: 1.68, unpriced: 0, perPrompt: true }),
    "Whole graph ≈ $0.50–$1.68: 2 Submits, 2 tasks, per prompt of each list");
  assert.equal(graphPriceText({ submits: 0, tasks: 0, usdLow: 0, usdHigh: 0, unpriced: 0, perPrompt: false }),
    "Whole graph: no Submit will run.");
  assert.equal(graphPriceText({ submits: 0, tasks: 0, usdLow: 0, usdHigh: 0, unpriced: 1, perPrompt: false }, "This graph, if run"),
    "This graph, if run: not known before the run (1 Submit not priced)");
});

test("reroutes between Prompt and Submit are followed", () => {
  const g = makeGraph();
  prompt(g, 1, "std", 5);
  g.add(5, "Reroute", { inputs: [""] });
  submit(g, 2);
  g.connect(1, 5, "");
  g.connect(5, 2, "request");
  assert.equal(submitPriceText(priced(g, 2)), "5 s · std ≈ $0.42");
});

// A subgraph node as the frontend has it: isSubgraphNode() and the graph inside as `subgraph`.
function subgraphNode(g, id, inner, mode = 0) {
  const node = g.add(id, "a1b2c3-subgraph-uuid", { mode });
  node.isSubgraphNode = () => true;
  node.subgraph = inner;
  return node;
}

function pricedChain(g, promptId, submitId, variations = 1, mode = "pro") {
  prompt(g, promptId, mode, 5);
  submit(g, submitId, variations);
  g.connect(promptId, submitId, "request");
}

test("the whole graph counts the Submits inside subgraphs, each instance, nested too", () => {
  const inner = makeGraph();
  pricedChain(inner, 1, 2, 2); // 2 × 5 s · pro
  const nested = makeGraph();
  pricedChain(nested, 1, 2, 1, "std"); // 5 s · std
  subgraphNode(inner, 3, nested);
  const root = makeGraph();
  pricedChain(root, 1, 2); // 5 s · pro
  subgraphNode(root, 10, inner);
  subgraphNode(root, 11, inner); // each instance counts (identical ones make one task: then above the bill)
  const snapshot = snapshotGraph(root);
  assert.equal(snapshot.nodes[2].subgraph, snapshot.nodes[3].subgraph); // one snapshot per graph
  const total = graphPrice(snapshot, makeRates());
  assert.deepEqual([total.submits, total.tasks, total.unpriced], [5, 1 + 2 * (2 + 1), 0]);
  assert.equal(total.usdHigh, 0.56 + 2 * (1.12 + 0.42));
  assert.equal(graphPriceText(total), "Whole graph ≈ $3.64: 5 Submits, 7 tasks");
});

test("a muted or bypassed subgraph node runs none of the Submits inside it", () => {
  const inner = makeGraph();
  pricedChain(inner, 1, 2, 4);
  const root = makeGraph();
  pricedChain(root, 1, 2);
  subgraphNode(root, 10, inner, 4); // bypassed
  subgraphNode(root, 11, inner, 2); // muted
  const total = graphPrice(snapshotGraph(root), makeRates());
  assert.deepEqual([total.submits, total.tasks, total.usdHigh], [1, 1, 0.56]);
});

test("a Submit whose request enters its subgraph from outside is counted as not priced", () => {
  const inner = makeGraph();
  submit(inner, 2);
  inner.nodes[0].inputs[0].link = 7; // from the subgraph's input node, which is no node of the graph
  inner.links.set(7, { id: 7, origin_id: -10, origin_slot: 0, target_id: 2 });
  const root = makeGraph();
  subgraphNode(root, 10, inner);
  const total = graphPrice(snapshotGraph(root), makeRates());
  assert.deepEqual([total.submits, total.unpriced], [0, 1]);
  assert.equal(graphPriceText(total), "Whole graph: not known before the run (1 Submit not priced)");
});

// A subgraph whose Submit takes `variations` from the subgraph's input 0 (a promoted widget).
function promotedVariations() {
  const inner = makeGraph();
  inner.inputNode = { id: -10 };
  pricedChain(inner, 1, 2); // 5 s · pro, variations from outside
  const variations = inner.nodes[1].inputs.find((i) => i.name === "variations");
  variations.link = 90;
  inner.links.set(90, { id: 90, origin_id: -10, origin_slot: 0, target_id: 2 });
  return inner;
}

function instance(g, id, inner, input) {
  const node = subgraphNode(g, id, inner);
  node.inputs = [input];
  node.widgets = input.widget ? [{ name: input.widget.name, value: input.value }] : [];
  return node;
}

test("an instance's own value for a promoted widget is what that instance bills", () => {
  const inner = promotedVariations();
  const root = makeGraph();
  instance(root, 10, inner, { name: "variations", link: null, widget: { name: "variations" }, value: 3 });
  instance(root, 11, inner, { name: "variations", link: null, widget: { name: "variations" }, value: 2 });
  const total = graphPrice(snapshotGraph(root), makeRates());
  assert.deepEqual([total.submits, total.tasks, total.usdHigh], [2, 5, 2.8]);
  // Inside the subgraph on its own, the Submit says its variations come by a link.
  assert.match(submitPriceText(submitPrice(snapshotGraph(inner), 2, makeRates())), /variations set by a link: counted once/);
});

test("a promoted input fed by a link from outside stays a link: counted once", () => {
  const root = makeGraph();
  root.add(5, "PrimitiveInt", { widgets: { value: 4 } });
  const node = instance(root, 10, promotedVariations(), { name: "variations", link: null, widget: { name: "variations" }, value: 3 });
  root.connect(5, 10, "variations");
  assert.ok(node.inputs[0].link != null);
  const total = graphPrice(snapshotGraph(root), makeRates());
  assert.deepEqual([total.submits, total.tasks, total.usdHigh], [1, 1, 0.56]);
});

test("a Submit inside a subgraph finds its Prompt and refs outside it, as Run does", () => {
  // Root: Video reference (a base edit) -> Prompt; the Prompt's request enters the subgraph,
  // where the Submit is.
  const inner = makeGraph();
  inner.inputNode = { id: -10 };
  submit(inner, 2, 2);
  inner.nodes[0].inputs.find((i) => i.name === "request").link = 91;
  inner.links.set(91, { id: 91, origin_id: -10, origin_slot: 0, target_id: 2 });
  const root = makeGraph();
  video(root, 1, "feature");
  prompt(root, 3, "pro", 5, { inputs: ["refs", "prompt", "mode", "duration"] });
  root.connect(1, 3, "refs");
  const node = instance(root, 10, inner, { name: "request", link: null });
  node.inputs[0].link = null;
  root.connect(3, 10, "request");
  const total = graphPrice(snapshotGraph(root), makeRates());
  // 2 variations of 5 s pro with a video input (the video rates): 2 × 5 × 0.168
  assert.deepEqual([total.submits, total.tasks, total.unpriced, total.usdHigh], [1, 2, 0, 1.68]);
});

test("references not known before the run may hold a video: the price covers a base edit too", () => {
  const g = makeGraph();
  prompt(g, 1, "std", 5);
  submit(g, 2);
  g.connect(1, 2, "request");
  g.nodes[0].inputs.find((i) => i.name === "refs").link = 77; // from a node the snapshot cannot see
  g.links.set(77, { id: 77, origin_id: "12:out", origin_slot: 0, target_id: 1 });
  // From a 3 s base edit at the std video rate ($0.38) to a 10 s one ($1.26); 5 s without a video lies between.
  assert.equal(submitPriceText(priced(g, 2)), "5 s, or the input video's length (references known at run time) · std ≈ $0.38–$1.26");
});

test("references that come out of a subgraph are known at run time, on the Submit and in the whole graph", () => {
  const inner = makeGraph();
  video(inner, 1, "base");
  const root = makeGraph();
  subgraphNode(root, 10, inner);
  prompt(root, 1, "std", 5);
  submit(root, 2);
  root.connect(10, 1, "refs");
  root.connect(1, 2, "request");
  const own = submitPrice(snapshotGraph(root), 2, makeRates());
  const whole = graphPrice(snapshotGraph(root), makeRates());
  assert.deepEqual([own.usdLow, own.usdHigh], [0.378, 1.26]);
  assert.deepEqual([whole.usdLow, whole.usdHigh], [0.378, 1.26]);
});

function linkFrom(g, id, from, slot, toNode, inputName) {
  g.links.set(id, { id, origin_id: from, origin_slot: slot, target_id: toNode.id });
  toNode.inputs.find((i) => i.name === inputName).link = id;
}

test("nested subgraphs: a promoted value reaches the Submit two levels down, per root instance", () => {
  const nested = makeGraph();
  nested.inputNode = { id: "-10" };
  pricedChain(nested, 1, 2, 1, "pro");
  linkFrom(nested, 50, "-10", 0, nested.nodes[1], "variations");
  const mid = makeGraph();
  mid.inputNode = { id: -10 };
  const inner = instance(mid, 3, nested, { name: "v", link: null });
  linkFrom(mid, 60, -10, 1, inner, "v"); // the middle graph's input slot 1
  const root = makeGraph();
  for (const [id, value] of [[10, 3], [11, 2]]) {
    const node = subgraphNode(root, id, mid);
    node.inputs = [{ name: "x", link: null }, { name: "v", link: null, widget: { name: "v" } }];
    node.widgets = [{ name: "v", value }];
  }
  const total = graphPrice(snapshotGraph(root), makeRates());
  assert.deepEqual([total.submits, total.tasks], [2, 5]);
  assert.deepEqual(flattenSnapshot(snapshotGraph(root)).nodes.filter((n) => n.type === "CometOmniSubmit").map((n) => n.id),
    ["10:3:2", "11:3:2"]);
});

test("nested subgraphs: a link from the root reaches a Submit two levels down", () => {
  const nested = makeGraph();
  nested.inputNode = { id: -10 };
  submit(nested, 2, 2);
  linkFrom(nested, 50, -10, 0, nested.nodes[0], "request");
  const mid = makeGraph();
  mid.inputNode = { id: -10 };
  linkFrom(mid, 60, -10, 0, instance(mid, 3, nested, { name: "r", link: null }), "r");
  const root = makeGraph();
  prompt(root, 1, "pro", 5);
  instance(root, 10, mid, { name: "r", link: null });
  root.connect(1, 10, "r");
  const total = graphPrice(snapshotGraph(root), makeRates());
  assert.deepEqual([total.submits, total.tasks, total.usdHigh], [1, 2, 1.12]);
});

test("references through a node that is no reference node may still carry a video: priced in", () => {
  const g = makeGraph();
  video(g, 5, "base");
  g.add(6, "Reroute (rgthree)", { inputs: [""] });
  prompt(g, 1, "std", 5);
  submit(g, 2);
  g.connect(5, 6, "");
  g.connect(6, 1, "refs");
  g.connect(1, 2, "request");
  assert.deepEqual([priced(g, 2).usdLow, priced(g, 2).usdHigh], [0.378, 1.26]);
});

test("unknown references and a linked duration: from 3 s without a video to a 10 s base edit", () => {
  const g = makeGraph();
  prompt(g, 1, "std", 5);
  submit(g, 2);
  g.connect(1, 2, "request");
  g.add(8, "PrimitiveInt");
  g.connect(8, 1, "duration");
  g.nodes[0].inputs.find((i) => i.name === "refs").link = 77;
  g.links.set(77, { id: 77, origin_id: "12:out", origin_slot: 0, target_id: 1 });
  assert.deepEqual([priced(g, 2).usdLow, priced(g, 2).usdHigh], [0.252, 1.26]);
});

test("a Submit that cannot be priced (a mode with no rate) leaves the others counted", () => {
  const g = makeGraph();
  pricedChain(g, 1, 2);
  prompt(g, 3, "ultra", 5);
  submit(g, 4);
  g.connect(3, 4, "request");
  const total = graphPrice(snapshotGraph(g), makeRates());
  assert.deepEqual([total.submits, total.unpriced, total.refused, total.usdHigh], [1, 0, 1, 0.56]);
  assert.equal(submitPriceText(priced(g, 4)), 'Refused before sending, bills nothing. CometOmniPrompt #3: mode is "ultra", '
    + "which has no rate: pick std or pro.");
});

// --- per model: kling-v3-omni beside kling-video-o1 ---------------------------------------

import { addPrompt, addShots, addSubmit, addVideo, makeGraph as makeFakeGraph } from "./fake_graph.mjs";
import { cost as costOf } from "../lib/pricing.js";

const STORYBOARD = [["climbs the stairs", 4], ["lights the lamp", 3], ["the beam sweeps the sea", 5]];

/** Prompt #1 → Submit #2; `options` for the Prompt (fake_graph.addPrompt). */
function chain(options = {}, shots = null) {
  const g = makeFakeGraph();
  addPrompt(g, 1, options);
  addSubmit(g, 2);
  g.connect(1, 2, "request");
  if (shots) addShots(g, 1, shots);
  return g;
}
const shown = (g, id = 2, rates = makeRates()) => submitPriceText(submitPrice(snapshotGraph(g), id, rates));

test("v3 at its own rates, with and without sound; the label is pricing.js's (and so Python's)", () => {
  const g = chain({ duration: 12 });
  assert.equal(shown(g), "12 s · pro · v3 ≈ $1.34");
  g.set(1, "sound", true);
  assert.equal(shown(g), "12 s · pro · v3 + sound ≈ $1.68");
  assert.equal(shown(g, 2, makeRates({ v3_pro_with_sound: 0.2, pro: 9 })), "12 s · pro · v3 + sound ≈ $2.40");
  g.set(1, "mode", "std");
  assert.equal(shown(g), "12 s · std · v3 + sound ≈ $1.34");
  for (const [model, sound, seconds, mode] of [["kling-v3-omni", false, 15, "std"], ["kling-v3-omni", true, 8, "pro"],
    ["kling-video-o1", false, 10, "pro"]]) {
    const one = chain({ model, sound, duration: seconds, mode });
    assert.equal(shown(one), costOf(mode, seconds, false, makeRates(), { model, sound }).text);
  }
});

test("a storyboard bills the Prompt's duration and says how many shots; a sum that is off bills nothing", () => {
  const g = chain({ prompt: "", duration: 12 }, STORYBOARD);
  assert.equal(shown(g), "12 s in 3 shots · pro · v3 ≈ $1.34");
  assert.equal(shown(g), costOf("pro", 12, false, makeRates(), { model: "kling-v3-omni", shots: 3 }).text);
  g.set(1, "sound", true);
  assert.equal(shown(g), "12 s in 3 shots · pro · v3 + sound ≈ $1.68");
  g.set(101, "duration", 4);
  assert.equal(shown(g), "Refused before sending, bills nothing. Prompt #1: The shots add up to 4 + 4 + 5 = 13 s, but "
    + "duration is 12 s: make the shots 12 s in all, or set duration to 13.");
  const whole = graphPrice(snapshotGraph(g), makeRates());
  assert.deepEqual([whole.submits, whole.refused, whole.usdHigh], [0, 1, 0]);
  assert.equal(graphPriceText(whole), "Whole graph: nothing will be sent (1 Submit refused before sending: see its line)");
  g.set(1, "duration", 13);
  assert.equal(shown(g), "13 s in 3 shots · pro · v3 + sound ≈ $1.82");
});

test("auto_shots bills the duration as usual", () => {
  assert.equal(shown(chain({ autoShots: true, duration: 10 })), "10 s · pro · v3 ≈ $1.12");
});

test("combinations the server refuses show what to fix instead of a price", () => {
  assert.equal(shown(chain({ model: "kling-video-o1", sound: true })), "Refused before sending, bills nothing. Prompt #1: "
    + "sound is on, but kling-video-o1 makes no sound of its own: pick kling-v3-omni in model, or turn sound off.");
  assert.match(shown(chain({ model: "kling-video-o1", duration: 12 })), /kling-video-o1 takes 3 to 10 s: set duration to 10 or less/);
  assert.match(shown(chain({ model: "kling-video-o1" }, STORYBOARD)), /^Refused before sending/);
  const withVideo = chain({ sound: true });
  addVideo(withVideo, 60, "feature");
  withVideo.connect(60, 1, "refs");
  assert.match(shown(withVideo), /^Refused before sending, bills nothing\. Prompt #1: sound is on with a video reference/);
  // A shot whose prompt is still empty is refused too, but what it bills is known: the price stays
  // (the Prompt node says what to fix), as for the Prompt's own tokens.
  assert.equal(shown(chain({ prompt: "", duration: 12 }, [["", 12]])), "12 s in 1 shot · pro · v3 ≈ $1.34");
  const bypassed = chain({ model: "kling-video-o1", sound: true });
  bypassed.node(2).mode = 4;
  assert.match(shown(bypassed), /^Bypassed: bills nothing \(when on: refused before sending, bills nothing\. Prompt #1: sound is on/);
});

test("a linked model: both models' prices, less what one of them refuses", () => {
  const g = chain({ duration: 5 });
  g.add(9, "PrimitiveString");
  g.connect(9, 1, "model");
  assert.equal(shown(g), "5 s · pro · v3 or O1 (model set by a link) ≈ $0.56");
  g.set(1, "duration", 12); // O1 takes at most 10 s
  assert.equal(shown(g), "12 s · pro · v3 (model set by a link; the other model refuses these settings) ≈ $1.34");
  g.set(1, "duration", 5);
  g.set(1, "sound", true); // O1 makes no sound
  assert.equal(shown(g), "5 s · pro · v3 (model set by a link; the other model refuses these settings) + sound ≈ $0.70");
  g.set(1, "sound", false);
  addVideo(g, 60, "feature");
  g.connect(60, 1, "refs");
  g.set(1, "mode", "std");
  assert.equal(shown(g, 2, makeRates({ std_with_video: 0.2 })), "5 s · std · v3 or O1 (model set by a link) ≈ $0.63–$1.00");
});

test("linked sound: with and without it; linked duration: each model's range", () => {
  const g = chain({ duration: 12 });
  g.add(9, "PrimitiveBoolean");
  g.connect(9, 1, "sound");
  assert.equal(shown(g), "12 s · pro · v3 + sound or not (sound set by a link) ≈ $1.34–$1.68");
  const o1 = chain({ model: "kling-video-o1" });
  o1.add(9, "PrimitiveBoolean");
  o1.connect(9, 1, "sound");
  assert.equal(shown(o1), "5 s · pro ≈ $0.56"); // O1 takes no sound: off is all it can be
  const seconds = chain();
  seconds.add(8, "PrimitiveInt");
  seconds.connect(8, 1, "duration");
  assert.equal(shown(seconds), "3–15 s (duration set by a link) · pro · v3 ≈ $0.34–$1.68");
  seconds.add(9, "PrimitiveString");
  seconds.connect(9, 1, "model"); // v3 3–15 s, O1 5 or 10 s (text only)
  assert.equal(shown(seconds), "3–15 s (duration set by a link) · pro · v3 or O1 (model set by a link) ≈ $0.34–$1.68");
});

test("a storyboard with a linked duration bills the shots' total; shots known only at run time bill the duration", () => {
  const g = chain({ prompt: "", duration: 12 }, STORYBOARD);
  g.add(8, "PrimitiveInt");
  g.connect(8, 1, "duration");
  assert.equal(shown(g), "12 s in 3 shots (duration set by a link must be 12) · pro · v3 ≈ $1.34");
  const open = chain({ prompt: "", duration: 9 }, STORYBOARD);
  open.add(5, "ShotSwitch", { title: "Switch" });
  open.connect(5, 100, "shots");
  assert.equal(shown(open), "9 s in shots known at run time · pro · v3 ≈ $1.01");
});

test("the whole graph sums O1 and v3 Submits at their own rates", () => {
  const g = chain({ duration: 12, sound: true }); // v3 + sound: 12 × 0.14
  addPrompt(g, 3, { model: "kling-video-o1", mode: "std" }); // O1: 5 × 0.084
  addSubmit(g, 4, { variations: 2 });
  g.connect(3, 4, "request");
  const whole = graphPrice(snapshotGraph(g), makeRates());
  assert.deepEqual([whole.submits, whole.tasks, whole.usdHigh], [2, 3, 1.68 + 0.84]);
  assert.equal(graphPriceText(whole), "Whole graph ≈ $2.52: 2 Submits, 3 tasks");
  g.set(3, "sound", true); // now refused: it bills nothing and the total says so
  assert.equal(graphPriceText(graphPrice(snapshotGraph(g), makeRates())),
    "Whole graph ≈ $1.68: 1 Submit, 1 task (1 Submit refused before sending: see its line)");
});

test("whole-graph wording with refused and unpriced Submits together", () => {
  assert.equal(graphPriceText({ submits: 1, tasks: 1, usdLow: 0.42, usdHigh: 0.42, unpriced: 1, refused: 2, perPrompt: false }),
    "Whole graph ≈ $0.42: 1 Submit, 1 task (1 Submit not priced; 2 Submits refused before sending: see their line)");
  assert.equal(graphPriceText({ submits: 0, tasks: 0, usdLow: 0, usdHigh: 0, unpriced: 1, refused: 1, perPrompt: false }),
    "Whole graph: not known before the run (1 Submit not priced; 1 Submit refused before sending: see its line)");
});
