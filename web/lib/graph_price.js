// What a Submit node, and the whole graph, will bill if run: from a snapshot of the canvas
// (graph_refs.snapshotGraph) and the user's rates. Pure, so Node tests it.
//
// A Submit bills `variations` tasks of the request its CometOmniPrompt builds, at the rate of
// the Prompt's model (web/lib/pricing.js): its mode, duration and sound, and its refs chain (a
// video in it: the video rates; a base video: as long as the input, 3–10 s). A Prompt without a
// model value (saved before the choice) is O1. A storyboard bills its total length, which is the
// Prompt's duration. A setting fed by a link is not known before the run: the price is then the
// range of what it can be, leaving out the combinations the server refuses (sound with O1, 12 s
// with O1, ...). A Prompt the server will certainly refuse (prompt_rules.reviewPrompt) bills
// nothing: the Submit says what to fix instead of a price. A prompt fed by a link (a prompt
// list) makes one request per prompt: the price is per prompt.

import { PROMPT_NODE, describeRefs, flattenSnapshot, nodeLabel, sourceOf } from "./graph_refs.js";
import { MAX_INPUT_SECONDS, MIN_INPUT_SECONDS, MODELS, MODEL_NAMES, O1, cost, pyRound, usdText } from "./pricing.js";
import { refFacts, reviewPrompt, shotsTotal } from "./prompt_rules.js";
import { t, tn } from "./i18n.js";

export const SUBMIT_NODE = "CometOmniSubmit";
const MODES = ["std", "pro"];
const RUNS = 0; // litegraph node modes: 0 always, 2 never (muted), 4 bypass
const NOT_RUN = { 2: "Muted", 4: "Bypassed" };
// The price labels themselves ("5 s · pro", "12 s in 3 shots · v3 + sound") are notation Python
// writes too (the Tasks sidebar shows its labels): they stay as they are in every language; the
// words around them follow the user's language.
const INACTIVE_KEYS = { Muted: "price.muted", Bypassed: "price.bypassed", "Not run": "price.notRun" };

/**
 * The price of Submit `submitId`: {active, inactive ("Muted"|"Bypassed"|""), problem, refused,
 * tasks, perPrompt, label, usdLow, usdHigh}. usd* are for all its variations; `problem` (a
 * sentence) when there is no Prompt to price; `refused` (what to fix) when its Prompt will be
 * refused before anything is sent, so it bills nothing.
 */
export function submitPrice(snapshot, submitId, rates) {
  const submit = (snapshot?.nodes ?? []).find((n) => String(n.id) === String(submitId));
  const mode = submit?.mode ?? RUNS;
  const result = { active: mode === RUNS, inactive: NOT_RUN[mode] ?? (mode === RUNS ? "" : "Not run"), problem: null,
    refused: null, tasks: 0, perPrompt: false, label: "", usdLow: 0, usdHigh: 0 };
  if (!submit) return { ...result, problem: t("price.notInGraph") };
  const prompt = sourceOf(snapshot, submitId, "request");
  if (!prompt) return { ...result, problem: t("price.connectPrompt") };
  if (prompt.type !== PROMPT_NODE) {
    return { ...result, problem: t("price.requestFrom", { node: nodeLabel(prompt) }) };
  }
  const one = taskPrice(snapshot, prompt, rates);
  if (one.refused) return { ...result, refused: one.refused };
  const linkedVariations = submit.inputs.variations != null;
  const count = linkedVariations ? 1 : wholeNumber(submit.widgets.variations, 1);
  return {
    ...result,
    tasks: count,
    perPrompt: prompt.inputs.prompt != null,
    label: (count > 1 ? `${count} × ` : "") + one.label + (linkedVariations ? t("price.variationsLinked") : ""),
    usdLow: pyRound(count * one.usdLow, 4),
    usdHigh: pyRound(count * one.usdHigh, 4),
  };
}

/** One task of the Prompt node `prompt`: {label, usdLow, usdHigh}, or {refused: what to fix}. */
function taskPrice(snapshot, prompt, rates) {
  const refs = describeRefs(snapshot, prompt.id);
  const review = reviewPrompt(snapshot, prompt.id, refs);
  const refusal = review.problems.find((p) => p.billing);
  if (refusal) return { refused: `${nodeLabel(prompt)}: ${refusal.text}` };
  const { settings, shots } = review;
  const facts = refFacts(refs);
  if (!settings.mode.linked && !MODES.includes(settings.mode.value)) {
    return { refused: `${nodeLabel(prompt)}: mode is "${settings.mode.value}", which has no rate: pick std or pro.` };
  }

  const models = settings.model.linked ? MODEL_NAMES : [settings.model.value];
  const modes = settings.mode.linked ? MODES : [settings.mode.value];
  const sounds = settings.sound.linked ? [false, true] : [settings.sound.value];
  // References not known before the run may hold a video of any refer_type: price that in.
  const videoInputs = refs.open && !refs.videos.length ? [false, true] : [refs.videos.length > 0];
  const referTypes = refs.videos.map((v) => v.referType).concat(refs.open ? [undefined] : []);
  const base = referTypes.includes("base");
  const maybeBase = !base && referTypes.includes(undefined);
  const storyboard = shots.linked; // its shots bill the Prompt's duration, which they must add up to
  const shotCount = storyboard && !shots.open ? shots.shots.length : 0;
  const total = storyboard ? shotsTotal(shots) : null;
  // Seconds that can be billed per model (null: the input video's length).
  const lengthsOf = (model) => {
    const kind = MODELS[model];
    if (base) return [null];
    let known;
    if (!settings.duration.linked) known = [settings.duration.value];
    else if (total !== null) known = [total]; // the only duration the server takes with these shots
    else known = Array.from({ length: kind.maxSeconds - kind.minSeconds + 1 }, (_, i) => kind.minSeconds + i);
    return maybeBase ? [...known, null] : known;
  };

  const costs = [];
  const kept = { models: new Set(), sounds: new Set(), seconds: new Set() };
  for (const model of models) {
    const kind = MODELS[model];
    for (const seconds of lengthsOf(model)) {
      for (const sound of sounds) {
        for (const videoInput of videoInputs) {
          const refused = (seconds === null && !videoInput) // the input's length needs an input video
            || (sound && (!kind.sound || videoInput))
            || ((storyboard || settings.autoShots.value) && !kind.shots)
            || (seconds !== null && (seconds < kind.minSeconds || seconds > kind.maxSeconds))
            || (seconds !== null && !videoInput && fixedRefuses(kind, seconds, facts));
          if (refused) continue;
          kept.models.add(model);
          kept.sounds.add(sound);
          kept.seconds.add(seconds);
          for (const mode of modes) costs.push(cost(mode, seconds, videoInput, rates, { model, sound, shots: shotCount }));
        }
      }
    }
  }
  if (!costs.length) {
    return { refused: t("price.allRefused", { node: nodeLabel(prompt) }) };
  }
  return {
    label: lengthText(settings, { base, maybeBase, refs, storyboard, shotCount, seconds: [...kept.seconds] })
      + ` · ${settings.mode.linked ? t("price.modeLinked") : modes[0]}`
      + modelText(settings, [...kept.models]) + soundText(settings, [...kept.sounds]),
    usdLow: Math.min(...costs.map((c) => c.usdLow)),
    usdHigh: Math.max(...costs.map((c) => c.usdHigh)),
  };
}

/** Does a model that takes only some lengths (O1: 5 or 10) refuse `seconds` for these references? */
function fixedRefuses(kind, seconds, facts) {
  if (!kind.fixedSeconds.length || kind.fixedSeconds.includes(seconds) || !facts.known || facts.base) return false;
  return facts.count === 0 || facts.firstFrameAlone;
}

/** "12 s in 3 shots", "5 s, or the input video's length (...)", "3–15 s (duration set by a link)"... */
function lengthText(settings, { base, maybeBase, refs, storyboard, shotCount, seconds }) {
  if (base) return `length of the input video, ${MIN_INPUT_SECONDS}–${MAX_INPUT_SECONDS} s`;
  const known = seconds.filter((s) => s !== null).sort((a, b) => a - b);
  const linked = settings.duration.linked;
  const one = known.length === 1 ? known[0] : null; // the duration, or the shots' total when duration is linked
  if (maybeBase) {
    const why = t(refs.open ? "price.refsAtRunTime" : "price.referTypeLinked");
    if (one !== null) return t("price.orInputLength", { seconds: one, why });
    const range = secondsText([...known, MIN_INPUT_SECONDS, MAX_INPUT_SECONDS]);
    return `${range} (${refs.open ? t("price.whyAndDurationLinked", { why }) : t("price.referTypeAndDurationLinked")})`;
  }
  if (storyboard && one !== null) {
    const inShots = shotCount ? ` in ${plural(shotCount, "shot")}` : t("price.shotsAtRunTime");
    return `${one} s${inShots}` + (linked ? t("price.durationMustBe", { seconds: one }) : "");
  }
  if (linked) return secondsText(known) + t("price.durationLinked");
  return `${settings.duration.value} s`;
}

/** "5 s", "3–15 s", "5 or 10 s": the lengths a task can have. */
function secondsText(values) {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  const [low, high] = [sorted[0], sorted[sorted.length - 1]];
  if (sorted.length === 1) return `${low} s`;
  if (sorted.length === high - low + 1 || sorted.length > 3) return `${low}–${high} s`;
  return `${sorted.join(t("word.or"))} s`;
}

/** " · v3" (none for O1, as its labels always were); the models a linked model may be. */
function modelText(settings, models) {
  const tag = (name) => MODELS[name]?.tag ?? name;
  if (!settings.model.linked) return settings.model.value === O1 ? "" : ` · ${tag(settings.model.value)}`;
  if (models.length > 1) return ` · ${models.map(tag).join(t("word.or"))}${t("price.modelLinked")}`;
  return ` · ${tag(models[0])}${t("price.modelLinkedOne")}`;
}

/** " + sound"; with sound set by a link, whether it can be on. */
function soundText(settings, sounds) {
  if (!settings.sound.linked) return settings.sound.value ? " + sound" : "";
  return sounds.includes(true) ? (sounds.includes(false) ? ` + sound${t("price.soundLinked")}` : " + sound") : "";
}

/** "4 × 5 s · pro ≈ $2.24", or why there is no price, or why this Submit bills nothing. */
export function submitPriceText(price) {
  if (price.problem) return price.problem;
  const inactive = t(INACTIVE_KEYS[price.inactive] ?? "price.notRun");
  if (price.refused) {
    return t(price.active ? "price.refused" : "price.inactiveRefused", { inactive, why: price.refused });
  }
  const text = `${price.label} ${usdText(price.usdLow, price.usdHigh)}${price.perPrompt ? t("price.perPrompt") : ""}`;
  return price.active ? text : t("price.inactiveBillsNothing", { inactive, text });
}

/**
 * The sum over the Submits that will run, inside subgraphs too, as Run executes them (see
 * flattenSnapshot: each instance of a subgraph counts, with its own values; a muted or
 * bypassed subgraph node runs none of its own): {submits, tasks, usdLow, usdHigh, unpriced, refused,
 * perPrompt}. `refused`: Submits whose Prompt will be refused before sending (they bill nothing).
 */
export function graphPrice(snapshot, rates) {
  const total = { submits: 0, tasks: 0, usdLow: 0, usdHigh: 0, unpriced: 0, refused: 0, perPrompt: false };
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
    if (price.refused) {
      total.refused += 1;
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
export function graphPriceText(total, lead = t("price.wholeGraph")) {
  const aside = [total.unpriced ? tn("price.notPriced", total.unpriced) : "",
    total.refused ? tn("price.refusedSubmits", total.refused) : ""].filter(Boolean);
  const unpriced = aside.length ? t("price.aside", { aside: aside.join(t("price.asideJoin")) }) : "";
  if (!total.submits) {
    if (total.unpriced) return t("price.graphUnknown", { lead, unpriced });
    return total.refused ? t("price.graphNothingSent", { lead, unpriced }) : t("price.graphNoSubmit", { lead });
  }
  const perPrompt = total.perPrompt ? t("price.perPromptOfList") : "";
  return t("price.graph", { lead, usd: usdText(total.usdLow, total.usdHigh), submits: tn("price.submits", total.submits),
    tasks: tn("price.tasks", total.tasks), perPrompt, unpriced });
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function wholeNumber(value, fallback) {
  const number = Number(value);
  return Number.isInteger(number) && number >= 1 ? number : fallback;
}
