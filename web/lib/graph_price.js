// What a Submit node, and the whole graph, will bill if run: from a snapshot of the canvas
// (graph_refs.snapshotGraph) and the user's rates. Pure, so Node tests it.
//
// A Submit bills `variations` tasks of the request its CometOmniPrompt builds: the Prompt's
// mode and duration, and its refs chain (a video in it: the video rates; a base video: as
// long as the input, 3–10 s). A setting fed by a link is not known before the run: the
// price is then the range of what it can be. A prompt fed by a link (a prompt list) makes
// one request per prompt: the price is per prompt.

import { PROMPT_NODE, describeRefs, flattenSnapshot, nodeLabel, sourceOf } from "./graph_refs.js";
import { MAX_INPUT_SECONDS, MIN_INPUT_SECONDS, cost, pyRound, usdText } from "./pricing.js";

export const SUBMIT_NODE = "CometOmniSubmit";
const MODES = ["std", "pro"];
const RUNS = 0; // litegraph node modes: 0 always, 2 never (muted), 4 bypass
const NOT_RUN = { 2: "Muted", 4: "Bypassed" };

/**
 * The price of Submit `submitId`: {active, inactive ("Muted"|"Bypassed"|""), problem, tasks,
 * perPrompt, label, usdLow, usdHigh}. usd* are for all its variations; `problem` (a sentence)
 * when there is no Prompt to price.
 */
export function submitPrice(snapshot, submitId, rates) {
  const submit = (snapshot?.nodes ?? []).find((n) => String(n.id) === String(submitId));
  const mode = submit?.mode ?? RUNS;
  const result = { active: mode === RUNS, inactive: NOT_RUN[mode] ?? (mode === RUNS ? "" : "Not run"), problem: null,
    tasks: 0, perPrompt: false, label: "", usdLow: 0, usdHigh: 0 };
  if (!submit) return { ...result, problem: "This Submit is not in the graph." };
  const prompt = sourceOf(snapshot, submitId, "request");
  if (!prompt) return { ...result, problem: "Connect a Kling Omni Prompt to request to see what this Submit bills." };
  if (prompt.type !== PROMPT_NODE) {
    return { ...result, problem: `The request comes from ${nodeLabel(prompt)}: what it bills is known when it runs.` };
  }
  const one = taskPrice(snapshot, prompt, rates);
  const linkedVariations = submit.inputs.variations != null;
  const count = linkedVariations ? 1 : wholeNumber(submit.widgets.variations, 1);
  return {
    ...result,
    tasks: count,
    perPrompt: prompt.inputs.prompt != null,
    label: (count > 1 ? `${count} × ` : "") + one.label + (linkedVariations ? " (variations set by a link: counted once)" : ""),
    usdLow: pyRound(count * one.usdLow, 4),
    usdHigh: pyRound(count * one.usdHigh, 4),
  };
}

/** One task of the Prompt node `prompt`: {label, usdLow, usdHigh}. */
function taskPrice(snapshot, prompt, rates) {
  const refs = describeRefs(snapshot, prompt.id);
  // References not known before the run may hold a video of any refer_type: price that in.
  const videoInputs = refs.open && !refs.videos.length ? [false, true] : [refs.videos.length > 0];
  const referTypes = refs.videos.map((v) => v.referType).concat(refs.open ? [undefined] : []);
  const modeLinked = prompt.inputs.mode != null;
  const durationLinked = prompt.inputs.duration != null;
  const modes = modeLinked ? MODES : [prompt.widgets.mode];
  const duration = wholeNumber(prompt.widgets.duration, 5);

  let lengths; // seconds that can be billed (null: the input video's length)
  let length;
  if (referTypes.includes("base")) {
    lengths = [null];
    length = `length of the input video, ${MIN_INPUT_SECONDS}–${MAX_INPUT_SECONDS} s`;
  } else if (referTypes.includes(undefined)) {
    const why = refs.open ? "references known at run time" : "refer_type set by a link";
    lengths = durationLinked ? [MIN_INPUT_SECONDS, MAX_INPUT_SECONDS, null] : [duration, null];
    length = durationLinked ? `${MIN_INPUT_SECONDS}–${MAX_INPUT_SECONDS} s (${refs.open ? why + ", duration set by a link" : "refer_type and duration set by links"})`
      : `${duration} s, or the input video's length (${why})`;
  } else if (durationLinked) {
    lengths = [MIN_INPUT_SECONDS, MAX_INPUT_SECONDS];
    length = `${MIN_INPUT_SECONDS}–${MAX_INPUT_SECONDS} s (duration set by a link)`;
  } else {
    lengths = [duration];
    length = `${duration} s`;
  }
  const costs = modes.flatMap((mode) => lengths.flatMap((seconds) => videoInputs
    .filter((videoInput) => videoInput || seconds !== null) // the input's length needs an input video
    .map((videoInput) => cost(mode, seconds, videoInput, rates))));
  return {
    label: `${length} · ${modeLinked ? "std or pro (mode set by a link)" : modes[0]}`,
    usdLow: Math.min(...costs.map((c) => c.usdLow)),
    usdHigh: Math.max(...costs.map((c) => c.usdHigh)),
  };
}

/** "4 × 5 s · pro ≈ $2.24", or why there is no price, or why this Submit bills nothing. */
export function submitPriceText(price) {
  if (price.problem) return price.problem;
  const text = `${price.label} ${usdText(price.usdLow, price.usdHigh)}${price.perPrompt ? " per prompt" : ""}`;
  return price.active ? text : `${price.inactive}: bills nothing (when on: ${text})`;
}

/**
 * The sum over the Submits that will run, inside subgraphs too, as Run executes them (see
 * flattenSnapshot: each instance of a subgraph counts, with its own values; a muted or
 * bypassed subgraph node runs none of its own): {submits, tasks, usdLow, usdHigh, unpriced, perPrompt}.
 */
export function graphPrice(snapshot, rates) {
  const total = { submits: 0, tasks: 0, usdLow: 0, usdHigh: 0, unpriced: 0, perPrompt: false };
  const flat = flattenSnapshot(snapshot);
  for (const node of flat.nodes) {
    if (node.type !== SUBMIT_NODE || (node.mode ?? RUNS) !== RUNS) continue;
    let price;
    try {
      price = submitPrice(flat, node.id, rates);
    } catch {
      price = { problem: "not priced" }; // e.g. a mode this version has no rate for: the others still count
    }
    if (price.problem) {
      total.unpriced += 1;
      continue;
    }
    total.submits += 1;
    total.tasks += price.tasks;
    total.usdLow += price.usdLow;
    total.usdHigh += price.usdHigh;
    total.perPrompt = total.perPrompt || price.perPrompt;
  }
  total.usdLow = pyRound(total.usdLow, 4);
  total.usdHigh = pyRound(total.usdHigh, 4);
  return total;
}

/** "Whole graph ≈ $3.08: 2 Submits, 5 tasks" (`lead` names what is priced). */
export function graphPriceText(total, lead = "Whole graph") {
  const unpriced = total.unpriced ? ` (${plural(total.unpriced, "Submit")} not priced)` : "";
  if (!total.submits) return total.unpriced ? `${lead}: not known before the run${unpriced}` : `${lead}: no Submit will run.`;
  const perPrompt = total.perPrompt ? ", per prompt of each list" : "";
  return `${lead} ${usdText(total.usdLow, total.usdHigh)}: ${plural(total.submits, "Submit")}, `
    + `${plural(total.tasks, "task")}${perPrompt}${unpriced}`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function wholeNumber(value, fallback) {
  const number = Number(value);
  return Number.isInteger(number) && number >= 1 ? number : fallback;
}
