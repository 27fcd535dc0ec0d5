// Which references reach a CometOmniPrompt, and which token names each one.
// Works on a plain snapshot of the canvas (see snapshotGraph) so Node can test it.
// Numbering is fixed by the pack's interface: along the refs chain, the reference
// furthest upstream comes first; images, elements and videos are counted separately.

import { t } from "./i18n.js";

export const REF_NODES = {
  CometOmniImageRef: "image",
  CometOmniElementRef: "element",
  CometOmniVideoRef: "video",
};
export const PROMPT_NODE = "CometOmniPrompt";
export const POLL_NODE = "CometOmniPoll";

// Node types known to output one image: a reference fed by anything else may be a batch,
// and a batch of N adds N images, a number the browser cannot know before the run.
const SINGLE_IMAGE_SOURCES = new Set(["LoadImage", "LoadImageOutput"]);
const PASS_THROUGH = new Set(["Reroute"]);
const MAX_HOPS = 1000; // a chain longer than this is a loop the walk missed

const MAX_SUBGRAPH_DEPTH = 32; // subgraphs cannot contain themselves; this only bounds a broken file
const SUBGRAPH_INPUT_NODE = "-10"; // litegraph's id of a subgraph's input node (links from outside)

/**
 * A plain copy of a litegraph graph (duck-typed: nodes with id, type/comfyClass, title,
 * widgets [{name, value}], inputs [{name, link}]; links via getLink(id) or links[id]).
 * -> {inputNode, nodes: [{id, type, title, mode, widgets: {name: value},
 *     inputs: {name: {node, slot} | null}, subgraph?, given?}]}
 * `mode` is litegraph's: 0 runs, 2 muted (never), 4 bypassed. A subgraph node (one that
 * isSubgraphNode()) carries the snapshot of the graph inside it as `subgraph`, and as `given`
 * what it feeds each subgraph input: {link} from this graph, {value} of its own widget (a
 * promoted widget), or null. Each graph is read once per `cache` (pass a Map to share it).
 */
export function snapshotGraph(graph, cache = new Map(), depth = 0) {
  if (cache.has(graph)) return cache.get(graph);
  const nodes = [];
  for (const node of graph?.nodes ?? graph?._nodes ?? []) {
    const widgets = {};
    for (const widget of node.widgets ?? []) {
      if (widget?.name) widgets[widget.name] = widget.value;
    }
    const inputs = {};
    (node.inputs ?? []).forEach((input, index) => {
      const link = input?.link == null ? null : linkById(graph, input.link);
      inputs[input?.name || String(index)] = link ? { node: link.origin_id, slot: link.origin_slot } : null;
    });
    const entry = { id: node.id, type: node.comfyClass ?? node.type, title: node.title ?? "", mode: node.mode ?? 0, widgets, inputs };
    if (node.isSubgraphNode?.() && node.subgraph && depth < MAX_SUBGRAPH_DEPTH) {
      entry.subgraph = snapshotGraph(node.subgraph, cache, depth + 1);
      entry.given = (node.inputs ?? []).map((input) => {
        const link = input?.link == null ? null : linkById(graph, input.link);
        if (link) return { link: { node: link.origin_id, slot: link.origin_slot } };
        const widget = input?.widget?.name && (node.widgets ?? []).find((w) => w?.name === input.widget.name);
        return widget ? { value: widget.value } : null;
      });
    }
    nodes.push(entry);
  }
  const snapshot = { inputNode: String(graph?.inputNode?.id ?? SUBGRAPH_INPUT_NODE), nodes };
  cache.set(graph, snapshot);
  return snapshot;
}

/**
 * The graph as Run executes it: every subgraph instance that runs expanded in its place (ids
 * "instance:inner", as in ComfyUI's prompt; muted and bypassed ones left out with all they
 * hold), and an input fed from a subgraph input rewired to what the instance gives it: its
 * own widget's value, or the link into the instance. So a Submit inside a subgraph finds its
 * Prompt and refs outside it, with the values that instance runs with.
 */
export function flattenSnapshot(snapshot) {
  const nodes = [];
  expand(snapshot, "", [], nodes);
  return { inputNode: snapshot?.inputNode ?? SUBGRAPH_INPUT_NODE, nodes };
}

function expand(snapshot, prefix, given, out) {
  // A link of this graph, in flat ids; one from this subgraph's input node is what the instance gives.
  const resolve = (link) => {
    if (!link) return { link: null };
    if (String(link.node) !== snapshot.inputNode || !prefix) return { link: { node: prefix + link.node, slot: link.slot } };
    return given[link.slot] ?? { link: { node: `${prefix}outside`, slot: 0 } }; // fed by nothing known
  };
  for (const node of snapshot?.nodes ?? []) {
    const id = prefix + node.id;
    if (node.subgraph) {
      if ((node.mode ?? 0) === 0) expand(node.subgraph, `${id}:`, (node.given ?? []).map((g) => (g?.link ? resolve(g.link) : g)), out);
      continue;
    }
    const widgets = { ...node.widgets };
    const inputs = {};
    for (const [name, link] of Object.entries(node.inputs)) {
      const source = resolve(link);
      if ("value" in source) widgets[name] = source.value;
      inputs[name] = source.link ?? null;
    }
    out.push({ ...node, id, widgets, inputs });
  }
}

function linkById(graph, id) {
  const links = graph.links ?? graph._links;
  return graph.getLink?.(id) ?? links?.get?.(id) ?? links?.[id] ?? null;
}

/** "Load Image #12": what a person sees on the canvas. */
export function nodeLabel(node) {
  return `${node.title || node.type} #${node.id}`;
}

/**
 * The references wired into the `refs` input of the prompt node `promptId`:
 * {images: [...], elements: [...], videos: [...], chain: [nodeId...], problems: [text], open?}.
 * `open`: the chain leads out of the graph, so more references may come at run time.
 * Each entry: {kind, number, token, nodeId, node (label), exact, ...kind fields}.
 * `exact` is false once an earlier image reference may be a batch: its number is then
 * the lowest it can be.
 */
export function describeRefs(snapshot, promptId) {
  const byId = new Map((snapshot?.nodes ?? []).map((n) => [String(n.id), n]));
  const result = { images: [], elements: [], videos: [], chain: [], problems: [] };
  const prompt = byId.get(String(promptId));
  if (!prompt) return result;

  const chain = [];
  const seen = new Set();
  let link = prompt.inputs.refs ?? null;
  while (link) {
    const node = follow(byId, link);
    if (!node) {
      result.problems.push(t("refs.outside"));
      result.open = true; // references beyond are not known before the run
      break;
    }
    if (seen.has(String(node.id))) {
      result.problems.push(t("refs.loops", { node: nodeLabel(node) }));
      break;
    }
    seen.add(String(node.id));
    if (node.subgraph) {
      result.problems.push(t("refs.fromSubgraph", { node: nodeLabel(node) }));
      result.open = true;
      break;
    }
    if (!REF_NODES[node.type]) {
      result.problems.push(t("refs.notARef", { node: nodeLabel(node) }));
      result.open = true; // a switch or a Get/Set pair may still pass references through
      break;
    }
    chain.push(node);
    link = node.inputs.refs ?? null;
  }
  chain.reverse(); // furthest upstream first

  let batchBefore = false;
  for (const node of chain) {
    result.chain.push(node.id);
    const kind = REF_NODES[node.type];
    const list = result[`${kind}s`];
    const number = list.length + 1;
    const entry = { kind, number, token: `<<<${kind}_${number}>>>`, nodeId: node.id, node: nodeLabel(node), exact: true };
    if (kind === "image") {
      const role = fromWidget(node, "role");
      const source = node.inputs.image ? follow(byId, node.inputs.image) : null;
      if (!node.inputs.image) result.problems.push(t("refs.noImageWired", { node: nodeLabel(node) }));
      entry.role = role;
      entry.source = source ? nodeLabel(source) : null;
      entry.exact = !batchBefore;
      // first_frame / end_frame take one image; a reference takes the whole batch.
      entry.batch = role !== "first_frame" && role !== "end_frame" && !(source && SINGLE_IMAGE_SOURCES.has(source.type));
      batchBefore = batchBefore || entry.batch;
    } else if (kind === "element") {
      entry.elementId = fromWidget(node, "element_id");
    } else {
      entry.url = fromWidget(node, "video_url");
      entry.referType = fromWidget(node, "refer_type");
      entry.keepSound = fromWidget(node, "keep_original_sound");
    }
    list.push(entry);
  }
  return result;
}

/** The node whose output feeds input `name` of node `nodeId` (through reroutes), or null. */
export function sourceOf(snapshot, nodeId, name) {
  const byId = new Map((snapshot?.nodes ?? []).map((n) => [String(n.id), n]));
  const link = byId.get(String(nodeId))?.inputs[name];
  return link ? follow(byId, link) : null;
}

/** The snapshot's nodes by id (as strings): what `follow` looks links up in. */
export function nodesById(snapshot) {
  return new Map((snapshot?.nodes ?? []).map((n) => [String(n.id), n]));
}

/** Resolve a link to the node that really produces the value (through reroute nodes), or null. */
export function follow(byId, link) {
  let node = byId.get(String(link.node));
  for (let hops = 0; node && PASS_THROUGH.has(node.type) && hops < MAX_HOPS; hops++) {
    const upstream = Object.values(node.inputs)[0];
    node = upstream ? byId.get(String(upstream.node)) : null;
  }
  return node ?? null;
}

// A widget's value, or undefined when the input is fed by a link (known only at run time).
function fromWidget(node, name) {
  if (node.inputs[name]) return undefined;
  return node.widgets[name];
}
