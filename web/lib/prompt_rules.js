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
      result.notes.push("shots comes from outside this graph (a subgraph's input): its shots are known when it runs.");
      break;
    }
    if (seen.has(String(node.id))) {
      result.problems.push(`The shots chain loops back to ${nodeLabel(node)}: make it a line of Kling Omni Shot nodes.`);
      break;
    }
    seen.add(String(node.id));
    if (node.subgraph) {
      result.open = true;
      result.notes.push(`shots comes out of the subgraph ${nodeLabel(node)}: its shots are known when it runs.`);
      break;
    }
    if (node.type !== SHOT_NODE) {
      result.open = true;
      result.notes.push(`shots comes from ${nodeLabel(node)}, which is not a Kling Omni Shot node: its shots are known when it runs.`);
      break;
    }
    if ((node.mode ?? 0) === MUTED) {
      result.notes.push(`${nodeLabel(node)} is muted: Run sends neither it nor the shots before it.`);
      break;
    }
    if ((node.mode ?? 0) === BYPASSED) result.notes.push(`${nodeLabel(node)} is bypassed: it is not one of the shots.`);
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
    billing(`model is "${model}", which this version does not know: pick ${V3} or ${O1}.`);
  }
  const facts = refFacts(refs);
  const duration = settings.duration.linked ? null : settings.duration.value;

  // rules.check_duration
  if (kind && duration !== null) {
    const { minSeconds: low, maxSeconds: high, fixedSeconds: fixed } = kind;
    const roomier = Object.values(MODELS).find((m) => m.maxSeconds > high && duration <= m.maxSeconds);
    const orOther = (other) => (other ? `, or pick ${other.name} (${other.minSeconds} to ${other.maxSeconds} s) in model` : "");
    if (duration < low || duration > high) {
      billing(`duration is ${duration} s, but ${kind.name} takes ${low} to ${high} s: set duration to `
        + `${duration > high ? `${high} or less` : `${low} or more`}${orOther(roomier)}.`);
    } else if (fixed.length && !fixed.includes(duration) && facts.known && !facts.base) {
      const choices = fixed.join(" or ");
      const any = Object.values(MODELS).find((m) => !m.fixedSeconds.length);
      if (facts.count === 0) {
        billing(`duration is ${duration} s, but ${kind.name} text-to-video takes ${choices} s: set duration to `
          + `${choices}${orOther(any)}.`);
      } else if (facts.firstFrameAlone) {
        billing(`duration is ${duration} s, but with ${kind.name} a first frame alone takes ${choices} s (${low} to `
          + `${high} with an end frame or other references): set duration to ${choices}${orOther(any)}.`);
      }
    }
  }

  // rules.check_sound
  if (settings.sound.value === true) {
    if (kind && !kind.sound) {
      const withSound = MODEL_NAMES.filter((name) => MODELS[name].sound).join(" or ");
      billing(`sound is on, but ${kind.name} makes no sound of its own: pick ${withSound} in model, or turn sound off.`);
    }
    if (refs.videos.length) {
      billing("sound is on with a video reference, and Kling makes no sound when a video goes in: turn sound off "
        + "(keep_original_sound on the Video Reference keeps the input video's sound).");
    }
  }

  // rules.check_shots
  const ownShots = shots.linked;
  const autoShots = settings.autoShots.value === true;
  if (ownShots || autoShots) {
    const asked = ownShots ? "shots are linked" : "auto_shots is on";
    const undo = ownShots ? "unlink shots" : "turn auto_shots off";
    if (kind && !kind.shots) {
      const storyboards = MODEL_NAMES.filter((name) => MODELS[name].shots).join(" or ");
      billing(`${asked}, but ${kind.name} makes no storyboards: pick ${storyboards} in model, or ${undo}.`);
    }
    if (ownShots && autoShots) {
      billing("shots are linked and auto_shots is on: choose one, your own shots or shots cut by Kling; "
        + "turn auto_shots off or unlink shots.");
    }
    if (facts.endFrame) billing(`${asked}, but a storyboard cannot end on an end frame: remove the end_frame image, or ${undo}.`);
    if (facts.base) {
      billing(`${asked}, but a video edit (refer_type base) keeps its input's length and cuts: use refer_type `
        + `feature, or ${undo}.`);
    }
  }
  if (ownShots) {
    const count = shots.shots.length;
    if (count > MAX_SHOTS) {
      billing(`${count} shots are linked; a storyboard has at most ${MAX_SHOTS}: remove ${count - MAX_SHOTS}.`);
    }
    for (const shot of shots.shots) {
      const label = `Shot ${shot.number}, ${shot.node}`;
      for (const text of shotProblems(shot.prompt, refs)) wording(`${label}: ${text}`);
      if (shot.duration !== undefined && !(Number.isInteger(shot.duration) && shot.duration >= MIN_SHOT_SECONDS
        && shot.duration <= MODELS[V3].maxSeconds)) {
        billing(`${label} lasts ${shot.duration} s: a shot lasts ${MIN_SHOT_SECONDS} to ${MODELS[V3].maxSeconds} s.`);
      }
    }
    const total = shotsTotal(shots);
    if (total !== null && duration !== null && total !== duration) {
      // Offer duration = total only where the model takes that length (a storyboard is v3's: 3 to 15 s).
      const { minSeconds, maxSeconds } = kind ?? MODELS[V3];
      const orDuration = total >= minSeconds && total <= maxSeconds ? `, or set duration to ${total}`
        : ` (a video lasts ${minSeconds} to ${maxSeconds} s)`;
      billing(`The shots add up to ${shotParts(shots)} = ${total} s, but duration is ${duration} s: make the shots `
        + `${duration} s in all${orDuration}.`);
    }
    const text = prompt.inputs?.prompt != null ? null : prompt.widgets?.prompt;
    if (typeof text === "string" && !BLANK.test(text)) {
      notes.push("With shots, Kling follows each shot's own prompt: the text above is sent but not used.");
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
  const of = duration === null ? "" : ` of ${duration} s`;
  if (!shots.linked) {
    if (settings.autoShots.value !== true) return null;
    return { level: "info", text: `auto_shots: Kling cuts the prompt into shots itself${duration === null ? "" : ` (${duration} s in all)`}.` };
  }
  const count = shots.shots.length;
  if (!count) return null; // all of them come from outside this graph: a note says so
  const name = `${count} shot${count === 1 ? "" : "s"}${shots.open ? " known here" : ""}`;
  const total = shotsTotal(shots);
  if (total === null) {
    const why = shots.open ? "more may come from outside this graph" : "a shot's duration is set by a link";
    return { level: "info", text: `${name}: ${shotParts(shots)} s${of} (${why}).` };
  }
  const sum = count === 1 ? `${total} s` : `${shotParts(shots)} = ${total} s`;
  if (duration === null) return { level: "info", text: `${name}: ${sum} (duration is set by a link: it must be ${total}).` };
  return { level: total === duration ? "info" : "error", text: `${name}: ${sum}${of}` };
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
    return ["its prompt holds half of a character (often a badly copied emoji), which cannot be sent: delete or retype it."];
  }
  const sent = normalizePrompt(source);
  if (BLANK.test(sent)) return [`its prompt is empty: describe what happens in the shot (1 to ${MAX_SHOT_PROMPT_CHARS} characters).`];
  const problems = [];
  const length = [...sent].length;
  if (length > MAX_SHOT_PROMPT_CHARS) problems.push(`its prompt is ${length} characters; the limit is ${MAX_SHOT_PROMPT_CHARS}.`);
  const check = checkTokens(source, refs);
  const seen = new Set();
  const counts = { image: refs.images.length, element: refs.elements.length, video: refs.videos.length };
  for (const odd of check.odd) {
    if (seen.has(odd.text)) continue;
    seen.add(odd.text);
    problems.push(`${odd.text} is not a token: write <<<image_N>>>, <<<element_N>>> or <<<video_1>>>.`);
  }
  if (refs.open) return problems; // the references are known when it runs
  for (const token of check.tokens) {
    if (token.status !== "missing" || seen.has(token.text)) continue;
    seen.add(token.text);
    const have = counts[token.kind];
    const wired = have ? `only ${have} ${token.kind}${have > 1 ? "s are" : " is"} wired` : `no ${token.kind} is wired`;
    problems.push(`${token.text} points at nothing: ${wired} into the Prompt's refs.`);
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
