// Words and input handling of Settings › CometAPI › Spending (web/spending_settings.js), from
// the answer of GET/POST /cometapi_omni/settings. Pure: Node tests it. The server checks every
// value (kling_omni/settings.py); this only turns what was typed into a number to send.

import { MODELS, MODEL_NAMES, O1, money, rateName } from "./pricing.js";
import { t, tn } from "./i18n.js";

// What each kind of rate is called (a key of the i18n tables), in the order a model lists them (a
// model without sound skips those). Labels, units and titles below are getters: they read in the
// language of the moment they are shown.
const RATE_KINDS = [
  { mode: "std", sound: false, video: false, key: "rates.std" },
  { mode: "pro", sound: false, video: false, key: "rates.pro" },
  { mode: "std", sound: true, video: false, key: "rates.stdSound" },
  { mode: "pro", sound: true, video: false, key: "rates.proSound" },
  { mode: "std", sound: false, video: true, key: "rates.stdVideo" },
  { mode: "pro", sound: false, video: true, key: "rates.proVideo" },
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
    name: rateName(model, kind.mode, kind.video, kind.sound), get label() { return t(kind.key); },
    get unit() { return t("rates.perSecond"); }, tag: MODELS[model].tag,
  })),
})).concat([{
  model: null,
  get title() { return t("rates.charges"); },
  fields: [{ name: "usd_per_unit", get label() { return t("rates.unit"); }, get unit() { return t("rates.perUnit"); }, tag: "" }],
}]);

/** Every rate field, in the order shown: {name, label, unit, tag} ("O1 pro, with a video input" = tag + label). */
export const RATE_FIELDS = RATE_GROUPS.flatMap((group) => group.fields);

/** "O1 pro", "v3 pro, with sound", "one Kling unit": a rate as a person names it. */
export function rateLabel(field) {
  return field.tag ? `${field.tag} ${field.label}` : field.label;
}

export function todayText(answer) {
  const today = answer?.today;
  if (!today || typeof today.usd !== "number") return t("spend.todayUnknown");
  // The server could not read the limit: say why, and that a save here repairs it (a file that could not
  // be read at all is kept aside; a bad limit alone is replaced, the file's other values kept).
  if (answer.limit_unknown) {
    return t(answer.limit_set_aside === false ? "spend.limitUnknownSave" : "spend.limitUnknown", { why: answer.limit_unknown });
  }
  const limit = answer.settings?.daily_limit_usd ?? 0;
  const spent = t("spend.spentToday", { usd: money(today.usd) });
  if (!(limit > 0)) return t("spend.noLimit", { spent });
  if (!(today.left_usd > 0)) return t("spend.nothingLeft", { spent, limit: money(limit) });
  return t("spend.left", { spent, left: money(today.left_usd), limit: money(limit) });
}

/** What was typed into a field as {value} to send, or {error} to show (nothing is sent). */
export function numberFromInput(text, what, { whole = false } = {}) {
  const trimmed = String(text ?? "").trim();
  const value = trimmed === "" ? NaN : Number(trimmed);
  if (!Number.isFinite(value)) return { error: t("spend.typeNumber", { what }) };
  if (whole && !Number.isInteger(value)) return { error: t("spend.typeWholeNumber", { what }) };
  return { value };
}

/** Where the rates come from: the shipped table (with its source) or the user's own. */
export function ratesSourceText(answer) {
  const rates = answer?.settings?.rates ?? {};
  const shipped = answer?.defaults?.rates ?? {};
  const changed = RATE_FIELDS.filter((f) => f.name in shipped && rates[f.name] !== shipped[f.name]).map(rateLabel);
  const source = answer?.rates_source ?? "";
  if (!changed.length) return t("rates.shipped", { source });
  return tn("rates.yours", changed.length, { changed: changed.join("; "), source });
}
