// Words and input handling of Settings › CometAPI › Spending (web/spending_settings.js), from
// the answer of GET/POST /cometapi_omni/settings. Pure: Node tests it. The server checks every
// value (kling_omni/settings.py); this only turns what was typed into a number to send.

import { MODELS, MODEL_NAMES, O1, money, rateName } from "./pricing.js";

const PER_SECOND = "USD per second";
// What each kind of rate is called, in the order a model lists them (a model without sound skips those).
const RATE_KINDS = [
  { mode: "std", sound: false, video: false, label: "std" },
  { mode: "pro", sound: false, video: false, label: "pro" },
  { mode: "std", sound: true, video: false, label: "std, with sound" },
  { mode: "pro", sound: true, video: false, label: "pro, with sound" },
  { mode: "std", sound: false, video: true, label: "std, with a video input" },
  { mode: "pro", sound: false, video: true, label: "pro, with a video input" },
];

/**
 * The rates as the settings hold them (kling_omni.pricing.Rates: flat names, O1's without a prefix, v3's
 * with "v3_"), grouped per model as Settings › CometAPI › Spending › Rates shows them: [{model, title,
 * fields: [{name, label, unit, tag}]}], O1 first (what workflows saved before the model choice run), then
 * the newer models, then the unit price.
 */
export const RATE_GROUPS = [O1, ...MODEL_NAMES.filter((name) => name !== O1)].map((model) => ({
  model,
  title: `${MODELS[model].title} (${model})`,
  fields: RATE_KINDS.filter((kind) => !kind.sound || MODELS[model].sound).map((kind) => ({
    name: rateName(model, kind.mode, kind.video, kind.sound), label: kind.label, unit: PER_SECOND, tag: MODELS[model].tag,
  })),
})).concat([{
  model: null,
  title: "Charges reported by Kling",
  fields: [{ name: "usd_per_unit", label: "one Kling unit", unit: "USD per unit (turns the reported charge into USD)", tag: "" }],
}]);

/** Every rate field, in the order shown: {name, label, unit, tag} ("O1 pro, with a video input" = tag + label). */
export const RATE_FIELDS = RATE_GROUPS.flatMap((group) => group.fields);

/** "O1 pro", "v3 pro, with sound", "one Kling unit": a rate as a person names it. */
export function rateLabel(field) {
  return field.tag ? `${field.tag} ${field.label}` : field.label;
}

export function todayText(answer) {
  const today = answer?.today;
  if (!today || typeof today.usd !== "number") return "Today's spend is not known (is the pack loaded on this server?).";
  // The server could not read the limit (a damaged settings file): say why, and that a save here repairs it.
  if (answer.limit_unknown) {
    return `${answer.limit_unknown} Submit refuses until it can: type the daily limit here to save a good file `
      + "(the damaged one is kept beside it).";
  }
  const limit = answer.settings?.daily_limit_usd ?? 0;
  const spent = `Spent today ≈ ${money(today.usd)}`;
  if (!(limit > 0)) return `${spent} · no limit`;
  if (!(today.left_usd > 0)) return `${spent} · nothing left of ${money(limit)}: new tasks are refused until tomorrow`;
  return `${spent} · ${money(today.left_usd)} left of ${money(limit)}`;
}

/** What was typed into a field as {value} to send, or {error} to show (nothing is sent). */
export function numberFromInput(text, what, { whole = false } = {}) {
  const trimmed = String(text ?? "").trim();
  const value = trimmed === "" ? NaN : Number(trimmed);
  if (!Number.isFinite(value)) return { error: `Type a number for the ${what}.` };
  if (whole && !Number.isInteger(value)) return { error: `Type a whole number for the ${what}.` };
  return { value };
}

/** Where the rates come from: the shipped table (with its source) or the user's own. */
export function ratesSourceText(answer) {
  const rates = answer?.settings?.rates ?? {};
  const shipped = answer?.defaults?.rates ?? {};
  const changed = RATE_FIELDS.filter((f) => f.name in shipped && rates[f.name] !== shipped[f.name]).map(rateLabel);
  const source = answer?.rates_source ?? "";
  if (!changed.length) return `Shipped rates: ${source}`;
  return `Your rates (${changed.join("; ")} differ${changed.length === 1 ? "s" : ""} from the shipped table). Shipped: ${source}`;
}
