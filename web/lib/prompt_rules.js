// What a CometOmniPrompt will send, read from a snapshot of the canvas (graph_refs.snapshotGraph),
// and what the server will refuse in it: the per-model rules of kling_omni/rules.py (model,
// duration, sound, shots) as far as the canvas knows them. The Prompt node shows the result
// (its shots, their total, what to fix) and the Submit's price leaves out what cannot run.
// Pure: Node tests it.
//
// A setting fed by a link is not known before the run: a rule that depends on it is not
// judged here (the server checks it when it runs). Only what will certainly be refused is
// reported.

import { describeRefs, follow, nodeLabel, nodesById } from "./graph_refs.js";
import { MODELS, MODEL_NAMES, O1, UNNAMED, V3 } from "./pricing.js";
import { checkTokens, normalizePrompt } from "./tokens.js";
import { wiredText } from "./format.js";
import { t, tn } from "./i18n.js";

export const SHOT_NODE = "CometOmniShot";
export const MAX_SHOTS = 6; // kling_omni/request.py
export const MAX_SHOT_PROMPT_CHARS = 512;
export const MIN_SHOT_SECONDS = 1;
const MUTED = 2; // litegraph node modes: 0 always, 2 never (muted), 4 bypass
const BYPASSED = 4;
// rules.is_blank: nothing a person can see (spaces, control, format and separator characters).
const BLANK = /^[\s\p{Cc}\p{Cf}\p{Zs}\p{Zl}\p{Zp}]*$/u;
const HALF_CHARACTER = /\p{Cs}/u; // a lone surrogate: rules.check_prompt_characters

/**
 * The Prompt node's settings as Run sends them: {model, mode, duration, sound, autoShots}, each
 * {value, linked}; value is undefined when a link sets it. A Prompt without a model value (saved
 * before the choice existed) is O1, as the server takes it.
 */
export function promptSettings(prompt) {
  const setting = (name, read) => {
    const linked = prompt?.inputs?.[name] != null;
    return { linked, value: linked ? undefined : read(prompt?.widgets?.[name]) };
  };
  return {
    model: setting("model", (v) => (v == null || v === "" ? UNNAMED : String(v))),
    mode: setting("mode", (v) => v),
    duration: setting("duration", (v) => wholeNumber(v, 5)),
    sound: setting("sound", (v) => v === true),
    autoShots: setting("auto_shots", (v) => v === true),
  };
}

/**
 * The shots chain wired into the `shots` input of Prompt `promptId`, walked as describeRefs walks
 * refs (through reroutes; a loop ends it): {wired, linked, shots: [{number, nodeId, node, prompt,
 * duration}], open, problems: [text], notes: [text]}.
 * Shot 1 is the one furthest upstream. prompt and duration are undefined when a link sets them.
 * A bypassed Shot passes the shots before it through; a muted one is left out by Run with every
 * shot before it. `open`: the chain leads out of the graph or through a node that is no Shot,
 * so its shots are known only when it runs. `linked`: the Prompt will get shots (or may).
 */
export function describeShots(snapshot, promptId) {
  const byId = nodesById(snapshot);
  const result = { wired: false, linked: false, shots: [], open: false, problems: [], notes: [] };
  let link = byId.get(String(promptId))?.inputs?.shots ?? null;
  result.wired = link != null;
  const chain = [];
  const seen = new Set();
  while (link) {
    const node = follow(byId, link);
    if (!node) {
      result.open = true;
      result.notes.push(t("shots.fromOutside"));
      break;
    }
    if (seen.has(String(node.id))) {
      result.problems.push(t("shots.loops", { node: nodeLabel(node) }));
      break;
    }
    seen.add(String(node.id));
    if (node.subgraph) {
      result.open = true;
      result.notes.push(t("shots.fromSubgraph", { node: nodeLabel(node) }));
      break;
    }
    if (node.type !== SHOT_NODE) {
      result.open = true;
      result.notes.push(t("shots.notAShot", { node: nodeLabel(node) }));
      break;
    }
    if ((node.mode ?? 0) === MUTED) {
      result.notes.push(t("shots.muted", { node: nodeLabel(node) }));
      break;
    }
    if ((node.mode ?? 0) === BYPASSED) result.notes.push(t("shots.bypassed", { node: nodeLabel(node) }));
    else chain.push(node);
    link = node.inputs.shots ?? null;
  }
  chain.reverse(); // furthest upstream first
  result.shots = chain.map((node, index) => {
    const duration = fromWidget(node, "duration");
    return {
      number: index + 1, nodeId: node.id, node: nodeLabel(node), prompt: fromWidget(node, "prompt"),
      duration: duration === undefined ? undefined : Number(duration),
    };
  });
  result.linked = result.shots.length > 0 || result.open;
  return result;
}

/**
 * Prompt `promptId` against the rules: {settings, refs, shots, problems: [{text, level, billing}],
 * notes: [text]}. Every problem will be refused by the server, nothing sent or billed; `billing`
 * marks the ones in what decides the bill (model, sound, duration, shots): the Submit shows those
 * instead of a price. The Prompt's own tokens are checked by tokens.checkTokens (format.js words
 * them); the shots' tokens are checked here.
 */
export function reviewPrompt(snapshot, promptId, refs = describeRefs(snapshot, promptId)) {
  const prompt = nodesById(snapshot).get(String(promptId));
  const settings = promptSettings(prompt);
  const shots = describeShots(snapshot, promptId);
  const problems = [];
  const notes = [...shots.notes];
  const billing = (text) => problems.push({ text, level: "error", billing: true });
  const wording = (text) => problems.push({ text, level: "error", billing: false });
  for (const text of shots.problems) problems.push({ text, level: "warn", billing: false });
  if (!prompt) return { settings, refs, shots, problems, notes };

  const model = settings.model.linked ? null : settings.model.value;
  const kind = model ? MODELS[model] : null;
  if (model && !kind) {
    billing(t("rules.unknownModel", { model, v3: V3, o1: O1 }));
  }
  const facts = refFacts(refs);
  const duration = settings.duration.linked ? null : settings.duration.value;

  // rules.check_duration
  if (kind && duration !== null) {
    const { minSeconds: low, maxSeconds: high, fixedSeconds: fixed } = kind;
    const roomier = Object.values(MODELS).find((m) => m.maxSeconds > high && duration <= m.maxSeconds);
    const orOther = (other) => (other ? t("rules.orPickModel", { model: other.name, low: other.minSeconds, high: other.maxSeconds }) : "");
    if (duration < low || duration > high) {
      billing(t(duration > high ? "rules.durationTooLong" : "rules.durationTooShort",
        { duration, model: kind.name, low, high, other: orOther(roomier) }));
    } else if (fixed.length && !fixed.includes(duration) && facts.known && !facts.base) {
      const choices = fixed.join(t("word.or"));
      const any = Object.values(MODELS).find((m) => !m.fixedSeconds.length);
      if (facts.count === 0) {
        billing(t("rules.textOnlyDuration", { duration, model: kind.name, choices, other: orOther(any) }));
      } else if (facts.firstFrameAlone) {
        billing(t("rules.firstFrameDuration", { duration, model: kind.name, choices, low, high, other: orOther(any) }));
      }
    }
  }

  // rules.check_sound
  if (settings.sound.value === true) {
    if (kind && !kind.sound) {
      const withSound = MODEL_NAMES.filter((name) => MODELS[name].sound).join(t("word.or"));
      billing(t("rules.noSound", { model: kind.name, models: withSound }));
    }
    if (refs.videos.length) {
      billing(t("rules.soundWithVideo"));
    }
  }

  // rules.check_shots
  const ownShots = shots.linked;
  const autoShots = settings.autoShots.value === true;
  if (ownShots || autoShots) {
    const asked = t(ownShots ? "rules.shotsLinked" : "rules.autoShotsOn");
    const undo = t(ownShots ? "rules.unlinkShots" : "rules.autoShotsOff");
    if (kind && !kind.shots) {
      const storyboards = MODEL_NAMES.filter((name) => MODELS[name].shots).join(t("word.or"));
      billing(t("rules.noStoryboards", { asked, model: kind.name, models: storyboards, undo }));
    }
    if (ownShots && autoShots) {
      billing(t("rules.shotsAndAuto"));
    }
    if (facts.endFrame) billing(t("rules.shotsEndFrame", { asked, undo }));
    if (facts.base) {
      billing(t("rules.shotsBase", { asked, undo }));
    }
  }
  if (ownShots) {
    const count = shots.shots.length;
    if (count > MAX_SHOTS) {
      billing(t("rules.tooManyShots", { count, max: MAX_SHOTS, extra: count - MAX_SHOTS }));
    }
    for (const shot of shots.shots) {
      const label = t("shots.label", { number: shot.number, node: shot.node });
      for (const text of shotProblems(shot.prompt, refs)) wording(`${label}: ${text}`);
      if (shot.duration !== undefined && !(Number.isInteger(shot.duration) && shot.duration >= MIN_SHOT_SECONDS
        && shot.duration <= MODELS[V3].maxSeconds)) {
        billing(t("rules.shotLength", { label, seconds: shot.duration, low: MIN_SHOT_SECONDS, high: MODELS[V3].maxSeconds }));
      }
    }
    const total = shotsTotal(shots);
    if (total !== null && duration !== null && total !== duration) {
      // Offer duration = total only where the model takes that length (a storyboard is v3's: 3 to 15 s).
      const { minSeconds, maxSeconds } = kind ?? MODELS[V3];
      const orDuration = total >= minSeconds && total <= maxSeconds ? t("rules.orSetDuration", { total })
        : t("rules.videoLasts", { low: minSeconds, high: maxSeconds });
      billing(t("rules.shotsSum", { parts: shotParts(shots), total, duration, or: orDuration }));
    }
    const text = prompt.inputs?.prompt != null ? null : prompt.widgets?.prompt;
    if (typeof text === "string" && !BLANK.test(text)) {
      notes.push(t("shots.textUnused"));
    }
  }
  return { settings, refs, shots, problems, notes };
}

/** The seconds the shots add up to, or null while one is set by a link or more may come. */
export function shotsTotal(shots) {
  if (shots.open || shots.shots.some((s) => s.duration === undefined)) return null;
  return shots.shots.reduce((sum, s) => sum + s.duration, 0);
}

function shotParts(shots) {
  return shots.shots.map((s) => (s.duration === undefined ? "?" : String(s.duration))).join(" + ");
}

/**
 * The line the Prompt node shows about its storyboard, {text, level}, or null without one:
 * "3 shots: 4 + 3 + 5 = 12 s of 12 s".
 */
export function shotsLine(review) {
  const { shots, settings } = review;
  const duration = settings.duration.linked ? null : settings.duration.value;
  const of = duration === null ? "" : t("shots.of", { duration });
  if (!shots.linked) {
    if (settings.autoShots.value !== true) return null;
    return { level: "info", text: t(duration === null ? "shots.auto" : "shots.autoSeconds", { duration }) };
  }
  const count = shots.shots.length;
  if (!count) return null; // all of them come from outside this graph: a note says so
  const name = tn(shots.open ? "shots.countKnownHere" : "shots.count", count);
  const total = shotsTotal(shots);
  if (total === null) {
    const why = t(shots.open ? "shots.moreMayCome" : "shots.durationLinked");
    return { level: "info", text: t("shots.lineUnknown", { name, parts: shotParts(shots), of, why }) };
  }
  const sum = count === 1 ? t("unit.seconds", { n: total }) : t("shots.sum", { parts: shotParts(shots), total });
  if (duration === null) return { level: "info", text: t("shots.sumDurationLinked", { name, sum, total }) };
  return { level: total === duration ? "info" : "error", text: t("shots.line", { name, sum, of }) };
}

/** The Prompt node's lines about model, sound and shots below the storyboard line: notes, then what to fix. */
export function reviewLines(review) {
  const lines = [];
  for (const text of review.notes) lines.push({ level: "info", text });
  for (const problem of review.problems) lines.push({ level: problem.level, text: problem.text });
  return lines;
}

/** What the server will refuse in one shot's prompt (rules.check_shot and its tokens). */
function shotProblems(text, refs) {
  if (text === undefined) return []; // set by a link: checked when it runs
  const source = String(text);
  if (HALF_CHARACTER.test(source)) {
    return [t("shot.halfCharacter")];
  }
  const sent = normalizePrompt(source);
  if (BLANK.test(sent)) return [t("shot.empty", { max: MAX_SHOT_PROMPT_CHARS })];
  const problems = [];
  const length = [...sent].length;
  if (length > MAX_SHOT_PROMPT_CHARS) problems.push(t("shot.tooLong", { length, max: MAX_SHOT_PROMPT_CHARS }));
  const check = checkTokens(source, refs);
  const seen = new Set();
  const counts = { image: refs.images.length, element: refs.elements.length, video: refs.videos.length };
  for (const odd of check.odd) {
    if (seen.has(odd.text)) continue;
    seen.add(odd.text);
    problems.push(t("help.notAToken", { text: odd.text }));
  }
  if (refs.open) return problems; // the references are known when it runs
  for (const token of check.tokens) {
    if (token.status !== "missing" || seen.has(token.text)) continue;
    seen.add(token.text);
    problems.push(t("shot.pointsAtNothing", { token: token.text, wired: wiredText(token.kind, counts[token.kind]) }));
  }
  return problems;
}

/** What the rules need to know of the references (a describeRefs result), as far as the canvas knows them. */
export function refFacts(refs) {
  const entries = [...refs.images, ...refs.elements, ...refs.videos];
  const roles = refs.images.map((e) => e.role);
  const referTypes = refs.videos.map((e) => e.referType);
  const known = !refs.open && !roles.includes(undefined) && !referTypes.includes(undefined);
  return {
    known, // every reference, its role and its refer_type are known
    count: entries.length,
    endFrame: roles.includes("end_frame"),
    base: referTypes.includes("base"),
    firstFrameAlone: known && entries.length === 1 && roles[0] === "first_frame",
  };
}

// A widget's value, or undefined when the input is fed by a link (known only at run time).
function fromWidget(node, name) {
  if (node.inputs?.[name]) return undefined;
  return node.widgets?.[name];
}

function wholeNumber(value, fallback) {
  const number = Number(value);
  return Number.isInteger(number) && number >= 1 ? number : fallback;
}
