// Words and input handling of Settings › CometAPI › Spending (web/spending_settings.js), from
// the answer of GET/POST /cometapi_omni/settings. Pure: Node tests it. The server checks every
// value (kling_omni/settings.py); this only turns what was typed into a number to send.

import { money } from "./pricing.js";

/** The rates as the settings hold them (kling_omni.pricing.Rates), with what a person reads. */
export const RATE_FIELDS = [
  { name: "std", label: "std", unit: "USD per second" },
  { name: "pro", label: "pro", unit: "USD per second" },
  { name: "std_with_video", label: "std with a video input", unit: "USD per second" },
  { name: "pro_with_video", label: "pro with a video input", unit: "USD per second" },
  { name: "usd_per_unit", label: "one Kling unit", unit: "USD per unit (turns the reported charge into USD)" },
];

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
  const changed = RATE_FIELDS.map((f) => f.name).filter((name) => name in shipped && rates[name] !== shipped[name]);
  const source = answer?.rates_source ?? "";
  if (!changed.length) return `Shipped rates: ${source}`;
  return `Your rates (${changed.join(", ")} differ${changed.length === 1 ? "s" : ""} from the shipped table). Shipped: ${source}`;
}
