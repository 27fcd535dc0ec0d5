import { test } from "node:test";
import assert from "node:assert/strict";

import { describeRefs, snapshotGraph } from "../lib/graph_refs.js";
import { checkTokens } from "../lib/tokens.js";
import { promptHelpLines } from "../lib/format.js";

// A tiny stand-in for litegraph's LGraph: nodes with widgets/inputs, links in a Map.
function makeGraph() {
  const nodes = [];
  const links = new Map();
  let nextLink = 1;
  const graph = {
    nodes,
    links,
    getLink: (id) => links.get(id),
    add(id, type, { title = "", widgets = {}, inputs = [] } = {}) {
      const node = {
        id, comfyClass: type, type, title,
        widgets: Object.entries(widgets).map(([name, value]) => ({ name, value })),
        inputs: inputs.map((name) => ({ name, link: null })),
      };
      nodes.push(node);
      return node;
    },
    connect(fromId, slot, toId, inputName) {
      const target = nodes.find((n) => n.id === toId);
      const input = target.inputs.find((i) => i.name === inputName);
      const id = nextLink++;
      links.set(id, { id, origin_id: fromId, origin_slot: slot, target_id: toId });
      input.link = id;
    },
  };
  return graph;
}

const imageRef = (g, id, role) => g.add(id, "CometOmniImageRef", { title: "Image Ref", widgets: { role }, inputs: ["image", "refs", "role"] });

// Load Image #12 → first_frame → Load Image #13 → reference → element → video → Prompt #30
function typicalGraph() {
  const g = makeGraph();
  g.add(12, "LoadImage", { title: "Load Image", widgets: { image: "a.png" } });
  g.add(13, "LoadImage", { title: "Crown", widgets: { image: "b.png" } });
  imageRef(g, 20, "first_frame");
  imageRef(g, 21, "reference");
  g.add(22, "CometOmniElementRef", { title: "Element", widgets: { element_id: "829836802793406551" }, inputs: ["refs", "element_id"] });
  g.add(23, "CometOmniVideoRef", { title: "Video", widgets: { video_url: "https://example.com/in.mp4", refer_type: "base", keep_original_sound: true }, inputs: ["refs", "video_url", "refer_type", "keep_original_sound"] });
  g.add(30, "CometOmniPrompt", { title: "Prompt", widgets: { prompt: "", mode: "pro" }, inputs: ["refs", "prompt"] });
  g.connect(12, 0, 20, "image");
  g.connect(13, 0, 21, "image");
  g.connect(20, 0, 21, "refs");
  g.connect(21, 0, 22, "refs");
  g.connect(22, 0, 23, "refs");
  g.connect(23, 0, 30, "refs");
  return g;
}

test("numbers references from the furthest upstream, per kind", () => {
  const refs = describeRefs(snapshotGraph(typicalGraph()), 30);
  assert.deepEqual(refs.chain, [20, 21, 22, 23]);
  assert.deepEqual(refs.problems, []);
  assert.deepEqual(refs.images.map((e) => [e.token, e.role, e.source, e.batch, e.exact]), [
    ["<<<image_1>>>", "first_frame", "Load Image #12", false, true],
    ["<<<image_2>>>", "reference", "Crown #13", false, true],
  ]);
  assert.deepEqual(refs.elements.map((e) => [e.token, e.elementId]), [["<<<element_1>>>", "829836802793406551"]]);
  assert.deepEqual(refs.videos.map((e) => [e.token, e.url, e.referType, e.keepSound]), [["<<<video_1>>>", "https://example.com/in.mp4", "base", true]]);
});

test("help text lists each token with its source and flags tokens pointing at nothing", () => {
  const refs = describeRefs(snapshotGraph(typicalGraph()), 30);
  const lines = promptHelpLines(refs, checkTokens("<<<image_1>>> wears @image2 then <<<image_3>>> and @element2 <<<img_1>>>", refs));
  const text = lines.map((l) => `${l.level}: ${l.text}`);
  assert.ok(text.includes("info: <<<image_1>>> = first_frame from Load Image #12"), text.join("\n"));
  assert.ok(text.includes("info: <<<image_2>>> = reference from Crown #13"));
  assert.ok(text.includes("info: <<<element_1>>> = element 829836802793406551 (Element #22)"));
  assert.ok(text.some((l) => l.startsWith("info: <<<video_1>>> = base video https://example.com/in.mp4, keeps its sound")));
  assert.ok(text.includes("error: <<<image_3>>> points at nothing: only 2 images are wired."));
  assert.ok(text.includes("error: @element2 points at nothing: only 1 element is wired."));
  assert.ok(text.some((l) => l.startsWith("error: <<<img_1>>> is not a token")));
  assert.equal(text.filter((l) => l.startsWith("error")).length, 3);
});

test("a reference fed by a node that may output a batch makes later numbers uncertain", () => {
  const g = makeGraph();
  g.add(5, "ImageBatch", { title: "Batch" });
  g.add(6, "LoadImage", { title: "Load Image" });
  imageRef(g, 7, "reference");
  imageRef(g, 8, "reference");
  g.add(9, "CometOmniPrompt", { inputs: ["refs"] });
  g.connect(5, 0, 7, "image");
  g.connect(6, 0, 8, "image");
  g.connect(7, 0, 8, "refs");
  g.connect(8, 0, 9, "refs");
  const refs = describeRefs(snapshotGraph(g), 9);
  assert.deepEqual(refs.images.map((e) => [e.number, e.batch, e.exact]), [[1, true, true], [2, false, false]]);
  const lines = promptHelpLines(refs, checkTokens("<<<image_3>>>", refs)).map((l) => l.text);
  assert.ok(lines.includes("<<<image_2>>> or later = reference from Load Image #6"), lines.join("\n"));
  assert.ok(lines.some((l) => l.startsWith("<<<image_3>>> points at an image only if the batches upstream")));
});

test("reroute nodes are followed; unwired images and foreign nodes are reported", () => {
  const g = makeGraph();
  g.add(1, "Reroute", { inputs: [""] });
  imageRef(g, 2, "end_frame");
  g.add(3, "Reroute", { inputs: [""] });
  g.add(4, "CometOmniPrompt", { inputs: ["refs"] });
  g.add(5, "SomethingElse", { title: "Mystery" });
  g.connect(2, 0, 3, "");
  g.connect(3, 0, 4, "refs");
  g.connect(5, 0, 2, "refs");
  const refs = describeRefs(snapshotGraph(g), 4);
  assert.deepEqual(refs.chain, [2]);
  assert.equal(refs.images[0].role, "end_frame");
  assert.equal(refs.images[0].batch, false); // a frame takes one image
  assert.deepEqual(refs.problems, [
    "refs comes from Mystery #5, which is not a CometOmni reference node.",
    "Image Ref #2 has no image wired.",
  ]);
});

test("a loop in the chain ends the walk with a message", () => {
  const g = makeGraph();
  imageRef(g, 1, "reference");
  imageRef(g, 2, "reference");
  g.add(3, "CometOmniPrompt", { inputs: ["refs"] });
  g.connect(1, 0, 2, "refs");
  g.connect(2, 0, 1, "refs");
  g.connect(2, 0, 3, "refs");
  const refs = describeRefs(snapshotGraph(g), 3);
  assert.deepEqual(refs.chain, [1, 2]);
  assert.ok(refs.problems.some((p) => p.includes("loops back to Image Ref #2")));
});

test("a widget turned into a linked input is shown as set by a link", () => {
  const g = typicalGraph();
  g.add(40, "PrimitiveString", { title: "Id" });
  g.connect(40, 0, 22, "element_id");
  const refs = describeRefs(snapshotGraph(g), 30);
  assert.equal(refs.elements[0].elementId, undefined);
  const lines = promptHelpLines(refs, checkTokens("", refs)).map((l) => l.text);
  assert.ok(lines.includes("<<<element_1>>> = element id set by a link (Element #22)"));
});

test("nothing wired means text to video; links kept in a plain object work too", () => {
  const snapshot = snapshotGraph({
    _nodes: [{ id: 1, type: "CometOmniPrompt", inputs: [{ name: "refs", link: null }], widgets: [] }],
    links: {},
  });
  const refs = describeRefs(snapshot, 1);
  assert.deepEqual([refs.images, refs.elements, refs.videos, refs.problems], [[], [], [], []]);
  const lines = promptHelpLines(refs, checkTokens("@image", refs));
  assert.match(lines[0].text, /^No references wired: text to video/);
  assert.deepEqual(lines.slice(1).map((l) => [l.level, l.text]), [["error", "@image points at nothing: no image is wired."]]);
  assert.deepEqual(describeRefs(snapshot, 99).chain, []);
});
