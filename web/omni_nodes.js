// On-canvas help for the Omni nodes (DOM widgets: the canvas renderer and Nodes 2.0 alike):
// - CometOmniPrompt: which tokens the wired refs chain provides, and tokens pointing at nothing;
//   its storyboard (the shots chain: how many, their total against duration) and whatever the
//   server will refuse in model, sound, duration and shots, with what to fix. One saved before
//   the model choice existed loads as it ran then: on kling-video-o1.
// - CometOmniSubmit: what it will bill, live (mode and seconds exact, USD an estimate at the
//   user's rates), and what the whole graph will bill if run.
// - CometOmniPoll: the task id of the last run stays visible (and copyable) to collect later.
// Live status text while Poll runs is ComfyUI's own: the server's send_progress_text is
// shown natively by frontend >= 1.16, so it is not duplicated here. The video preview is
// native too (the node's ui payload has "images" with "animated": [true]).
import { app } from "../../scripts/app.js";
import { PROMPT_NODE, POLL_NODE, describeRefs, snapshotGraph } from "./lib/graph_refs.js";
import { SUBMIT_NODE, graphPrice, graphPriceText, submitPrice, submitPriceText } from "./lib/graph_price.js";
import { currentRates, loadSettings } from "./pack_api.js";
import { checkTokens } from "./lib/tokens.js";
import { promptHelpLines, taskIdFromOutput, taskIdText, textColumns } from "./lib/format.js";
import { keptOnO1Note, valuesForSavedPrompt } from "./lib/saved_prompt.js";
import { reviewLines, reviewPrompt, shotsLine } from "./lib/prompt_rules.js";
import { O1 } from "./lib/pricing.js";
import { language, t } from "./lib/i18n.js";
import { followLocale } from "./locale.js";

const REFRESH_MS = 700; // the refs chain can change anywhere upstream: a cheap periodic look
const TASK_PROPERTY = "cometapi_task_id";
const COLORS = { error: "var(--error-text, #ff6b6b)", warn: "#e0a040", info: "", muted: "var(--descrip-text, #999)" };
const tracked = new Set();
const graphPriceListeners = new Set();
let rootPrice = null; // what Run will bill (the root and its subgraphs), null without a Submit
let rootPriceKey = "null";

/** Hear what the whole graph (the workflow's root) will bill, now and whenever it changes. */
export function onGraphPrice(listener) {
  graphPriceListeners.add(listener);
  listener(rootPrice);
  return () => graphPriceListeners.delete(listener);
}

function publishRootPrice(total) {
  const key = JSON.stringify(total);
  if (key === rootPriceKey) return;
  rootPrice = total;
  rootPriceKey = key;
  for (const listener of graphPriceListeners) listener(total);
}

function addTextWidget(node, name) {
  const box = document.createElement("div");
  Object.assign(box.style, {
    fontSize: "11px", lineHeight: "15px", whiteSpace: "pre-wrap", overflowY: "auto",
    padding: "3px 6px", borderRadius: "4px", userSelect: "text",
    color: "var(--input-text, #ddd)", background: "var(--comfy-input-bg, #222)",
  });
  let lines = 1;
  // The frontend draws a DOM widget `margin` inside its height on each side: the height
  // includes it, or a crowded node (e.g. once the video preview is added) squashes the box.
  const margin = 4;
  const height = () => Math.max(lines * 15 + 8, 28) + 2 * margin; // 28: room for the Copy button
  const widget = node.addDOMWidget(name, "cometapi_omni_text", box, {
    serialize: false, // kept out of the API prompt...
    getValue: () => "",
    setValue: () => {},
    margin,
    // As tall as its lines, no taller: the canvas renderer shares a node's free room among the
    // DOM widgets up to their maximum, which left a mostly empty box on tall nodes. Nodes 2.0
    // ignores the maximum and stretches the row: the box's own max-height (render) holds there.
    getMinHeight: height,
    getMaxHeight: height,
  });
  widget.serialize = false; // ...and out of the saved workflow's widgets_values
  const render = (items) => {
    box.replaceChildren(...items);
    // Rough count of wrapped lines (about 55 columns fit the default node width; a Chinese,
    // Japanese or Korean character takes two).
    const wrapped = items.reduce((sum, item) => sum + Math.max(1, Math.ceil(textColumns(item.textContent) / 55)), 0);
    lines = Math.max(1, Math.min(12, wrapped));
    box.style.maxHeight = `${height() - 2 * margin}px`;
    const wanted = node.computeSize?.();
    if (wanted && wanted[1] > node.size[1]) node.setSize([node.size[0], wanted[1]]);
    node.setDirtyCanvas?.(true, true);
  };
  return { box, render };
}

function line(text, level = "info") {
  const div = document.createElement("div");
  div.textContent = text; // textContent: node titles and prompts are never parsed as HTML
  if (COLORS[level]) div.style.color = COLORS[level];
  return div;
}

/**
 * A Prompt loaded from a workflow saved before the model choice existed keeps running as O1
 * (web/lib/saved_prompt.js says why). nodeCreated runs before the frontend configures a node
 * from its saved form, and the node's onConfigure (set here on this node only, chained; no
 * prototype is touched) is handed that form: the root graph, subgraphs, pasted nodes and every
 * frontend version alike.
 */
function keepSavedModel(node) {
  const configured = node.onConfigure;
  node.onConfigure = function (info) {
    const result = configured?.apply(this, arguments);
    try {
      const saved = (this.widgets ?? []).filter((w) => w && w.serialize !== false).map((w) => w.name);
      const values = valuesForSavedPrompt(info, saved);
      if (values) {
        for (const widget of this.widgets) {
          if (widget && Object.hasOwn(values, widget.name)) widget.value = values[widget.name];
        }
        this.cometapiKeptOnO1 = true;
        this.setDirtyCanvas?.(true, true);
      }
    } catch (error) {
      console.warn("[CometAPI Omni] could not read a saved Prompt's model", error);
    }
    return result;
  };
}

function setUpPrompt(node) {
  keepSavedModel(node);
  const view = addTextWidget(node, "cometapi_prompt_help");
  let shown = "";
  node.cometapiRefresh = (snapshot) => {
    const refs = describeRefs(snapshot, node.id);
    const review = reviewPrompt(snapshot, node.id, refs);
    const promptLinked = node.inputs?.some((input) => input.name === "prompt" && input.link != null);
    const text = node.widgets?.find((w) => w.name === "prompt")?.value ?? "";
    const lines = [];
    if (node.cometapiKeptOnO1 && node.widgets?.find((w) => w.name === "model")?.value === O1) {
      lines.push({ level: "info", text: keptOnO1Note() });
    }
    const storyboard = shotsLine(review); // first: it changes as the shots are edited
    if (storyboard) lines.push(storyboard);
    lines.push(...promptHelpLines(refs, promptLinked ? null : checkTokens(text, refs)));
    if (promptLinked) lines.push({ level: "info", text: t("prompt.linked") });
    lines.push(...reviewLines(review));
    const key = JSON.stringify(lines);
    if (key === shown) return;
    shown = key;
    view.render(lines.map((l) => line(l.text, l.level)));
  };
  tracked.add(node);
}

function setUpSubmit(node) {
  const view = addTextWidget(node, "cometapi_submit_price");
  const size = { fitted: null };
  let shown = "";
  node.cometapiRefresh = (snapshot, context) => {
    fitToContent(node, size); // a template's saved size left empty room under the price lines
    view.box.title = t("price.tooltip");
    const price = submitPrice(snapshot, node.id, context.rates);
    const lines = [
      { text: submitPriceText(price), level: price.refused && price.active ? "error" : price.problem || !price.active ? "warn" : "info" },
      { text: graphPriceText(context.whole()), level: "muted" },
    ];
    const key = JSON.stringify(lines);
    if (key === shown) return;
    shown = key;
    view.render(lines.map((l) => line(l.text, l.level)));
  };
  tracked.add(node);
}

/**
 * As tall as its content, no taller (Submit, Poll): its widgets, the text box, and Poll's video preview once
 * there is one. The frontend's computeSize() is that height (the preview widget's minimum is the
 * video at the node's width); a saved size (the templates', or an older pack's 720 px) or the
 * room a previous preview took would otherwise stay as empty space. Fitted whenever that height
 * changes (loaded, preview added or replaced), so a node the user resized keeps its size meanwhile.
 */
function fitToContent(node, state) {
  const wanted = Math.ceil(node.computeSize?.()?.[1] ?? 0);
  if (!wanted || wanted === state.fitted) return;
  state.fitted = wanted;
  if (Math.abs(node.size[1] - wanted) > 1) {
    node.setSize([node.size[0], wanted]);
    node.setDirtyCanvas?.(true, true);
  }
}

function setUpPoll(node) {
  const view = addTextWidget(node, "cometapi_task_id");
  const size = { fitted: null };
  let shown = null;
  node.cometapiRefresh = () => {
    fitToContent(node, size);
    const id = node.properties?.[TASK_PROPERTY] ?? "";
    const key = `${language()} ${id}`; // drawn again in another language
    if (key === shown) return;
    shown = key;
    if (!id) {
      view.render([line(t("poll.noTask"), "info")]);
      return;
    }
    const row = line(taskIdText(id));
    const copy = document.createElement("button");
    copy.type = "button";
    copy.textContent = t("poll.copy");
    copy.title = t("poll.copyTip");
    Object.assign(copy.style, { marginLeft: "6px", fontSize: "10px" });
    copy.addEventListener("click", () => navigator.clipboard?.writeText(id));
    row.append(copy);
    view.render([row]);
  };
  const previous = node.onExecuted;
  node.onExecuted = function (output) {
    previous?.apply(this, arguments);
    const id = taskIdFromOutput(output);
    if (id) {
      // A task id is no secret; keeping it in the workflow lets a user collect it after a reload.
      this.properties = this.properties ?? {};
      this.properties[TASK_PROPERTY] = id;
      this.cometapiRefresh();
    }
  };
  tracked.add(node);
}

function refreshAll() {
  const snapshots = new Map(); // graph -> its snapshot, each graph read once per round
  const snapshotOf = (graph) => snapshotGraph(graph, snapshots);
  const rates = currentRates();
  // What Run bills: the workflow's root with every subgraph in it, whichever graph is on
  // screen and whichever graph a Submit sits in. Worked out once per round, when asked.
  let rootTotal = null;
  const whole = () => (rootTotal ??= graphPrice(snapshotOf(app.rootGraph ?? app.graph), rates));
  let anySubmit = false;
  for (const node of tracked) {
    if (!node.graph) {
      tracked.delete(node); // removed from the canvas
      continue;
    }
    anySubmit ||= node.comfyClass === SUBMIT_NODE;
    try {
      node.cometapiRefresh(snapshotOf(node.graph), { rates, whole });
    } catch (error) {
      console.warn("[CometAPI Omni] could not refresh node help", error);
    }
  }
  publishRootPrice(anySubmit ? whole() : null);
}

app.registerExtension({
  name: "CometAPI.Omni.NodeHelp",
  nodeCreated(node) {
    if (node.comfyClass === PROMPT_NODE) setUpPrompt(node);
    else if (node.comfyClass === SUBMIT_NODE) setUpSubmit(node);
    else if (node.comfyClass === POLL_NODE) setUpPoll(node);
  },
  setup() {
    followLocale();
    loadSettings().catch(() => {}); // the user's rates; the shipped ones until then, or if it fails
    setInterval(refreshAll, REFRESH_MS);
  },
});
