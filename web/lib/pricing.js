// What a request will bill: the mirror of kling_omni/pricing.py for the live display.
// Mode and seconds are exact; the USD amount is an estimate at the user's rates (Settings ›
// CometAPI › Spending, else the shipped table below). tests/pricing_cases.json holds the cases
// both implementations must agree on; pricing.test.mjs runs them here. Pure: Node tests it.

export const MIN_INPUT_SECONDS = 3; // the length a base video may have
export const MAX_INPUT_SECONDS = 10;
export const O1 = "kling-video-o1";
export const V3 = "kling-v3-omni";
/**
 * Each model's short tag (price labels), the prefix of its rate names and what it can do
 * (kling_omni/models.py, pricing.py). fixedSeconds: the only lengths text-to-video and a first
 * frame alone take (empty: any in range).
 */
export const MODELS = Object.freeze({
  [V3]: Object.freeze({ name: V3, tag: "v3", title: "Kling 3.0 Omni", prefix: "v3_", sound: true, shots: true,
    minSeconds: 3, maxSeconds: 15, fixedSeconds: Object.freeze([]) }),
  [O1]: Object.freeze({ name: O1, tag: "O1", title: "Kling O1", prefix: "", sound: false, shots: false,
    minSeconds: 3, maxSeconds: 10, fixedSeconds: Object.freeze([5, 10]) }),
});
export const MODEL_NAMES = Object.freeze([V3, O1]); // as the Prompt node offers them: the newest first
export const NEWEST = V3; // what a Prompt node added in the UI starts on
// A Prompt that names no model was saved before models could be chosen: it ran as O1 and still does.
export const UNNAMED = O1;
export const RATE_NAMES = ["std", "pro", "std_with_video", "pro_with_video", "v3_std", "v3_pro", "v3_std_with_sound",
  "v3_pro_with_sound", "v3_std_with_video", "v3_pro_with_video"];

/** The shipped table (USD per generated second; usd_per_unit turns Kling's units into USD). */
export const DEFAULT_RATES = Object.freeze({
  std: 0.084, pro: 0.112, std_with_video: 0.126, pro_with_video: 0.168,
  v3_std: 0.084, v3_pro: 0.112, v3_std_with_sound: 0.112, v3_pro_with_sound: 0.14, v3_std_with_video: 0.126,
  v3_pro_with_video: 0.168, usd_per_unit: 0.14,
});
// Shown when the server cannot be asked (the server's rates_source is the one that counts).
export const DEFAULT_RATES_SOURCE = "Kling's list prices: kling-video-o1 0.6 units/s std, 0.8 pro; 0.9 and 1.2 with "
  + "a video input. kling-v3-omni the same, and 0.8 std / 1.0 pro with native sound. 1 unit ≈ $0.14 (as of "
  + "2026-12). CometAPI publishes no Omni rate.";

/** The shipped rates with `overrides` (e.g. the settings' rates) laid over them; unknown or bad values ignored. */
export function makeRates(overrides = {}) {
  const rates = { ...DEFAULT_RATES };
  for (const name of Object.keys(DEFAULT_RATES)) {
    const value = overrides?.[name];
    if (typeof value === "number" && Number.isFinite(value) && value > 0) rates[name] = value;
  }
  return Object.freeze(rates);
}

/** The name of the rate for a model, mode, video input and sound (a video input decides: it takes no sound). */
export function rateName(model, mode, videoInput, sound) {
  const prefix = MODELS[model || O1]?.prefix ?? `${model}_`;
  return prefix + mode + (videoInput ? "_with_video" : sound ? "_with_sound" : "");
}

/** USD per second; throws for a model or mode without a rate. */
export function perSecond(rates, mode, videoInput, { model = O1, sound = false } = {}) {
  const name = rateName(model, mode, videoInput, sound);
  if (!RATE_NAMES.includes(name)) {
    throw new Error(`no rate for ${model || O1} in mode ${JSON.stringify(mode)}${sound ? " with sound" : ""}`);
  }
  return rates[name];
}

/**
 * What one task bills: {model, mode, seconds, videoInput, sound, shots, usdLow, usdHigh, length, label, usd, text}.
 * `seconds` null: a base edit, as long as its input video (a range of 3–10 s). `shots`: a storyboard of that
 * many shots (it bills its total length).
 */
export function cost(mode, seconds, videoInput, rates = DEFAULT_RATES, { model = O1, sound = false, shots = 0 } = {}) {
  const rate = perSecond(rates, mode, videoInput, { model, sound });
  let low, high;
  if (seconds === null || seconds === undefined) {
    low = MIN_INPUT_SECONDS * rate;
    high = MAX_INPUT_SECONDS * rate;
  } else {
    low = high = billedSeconds(seconds) * rate;
  }
  return costOf({ model: model || O1, mode, seconds: seconds ?? null, videoInput: Boolean(videoInput),
    sound: Boolean(sound), shots: shots || 0 }, pyRound(low, 4), pyRound(high, 4));
}

function costOf(task, usdLow, usdHigh) {
  const { model, mode, seconds, sound, shots } = task;
  const length = seconds === null ? `length of the input video, ${MIN_INPUT_SECONDS}–${MAX_INPUT_SECONDS} s`
    : `${formatG(seconds)} s${shots ? ` in ${shots} shot${shots > 1 ? "s" : ""}` : ""}`;
  const tag = model === O1 ? "" : ` · ${MODELS[model]?.tag ?? model}`;
  const label = `${length} · ${mode}${tag}${sound ? " + sound" : ""}`;
  const usd = usdText(usdLow, usdHigh);
  return { ...task, usdLow, usdHigh, length, label, usd, text: `${label} ${usd}` };
}

/** '≈ $0.56', or '≈ $0.50–$1.68' for a range: always called an estimate. */
export function usdText(low, high) {
  return isClose(low, high) ? `≈ ${money(high)}` : `≈ ${money(low)}–${money(high)}`;
}

/** A base edit is billed on its input's length rounded to whole seconds (at least 1). */
export function billedSeconds(seconds) {
  return Math.max(1, pyRound(seconds, 0));
}

/** Kling's final_unit_deduction in USD at the user's unit price; null when not reported. */
export function actualUsd(units, rates = DEFAULT_RATES) {
  const value = typeof units === "number" ? units : (typeof units === "string" && units.trim() ? Number(units) : NaN);
  return Number.isFinite(value) && value >= 0 ? pyRound(value * rates.usd_per_unit, 4) : null;
}

/** $0.56, $12.40, $1,234.50, $0.004 (small amounts keep a significant digit), as Python's money(). */
export function money(usd) {
  if (usd !== 0 && Math.abs(usd) < 0.01) return `$${fixed(usd, 3)}`;
  return `$${group(fixed(usd, 2))}`;
}

// --- Python's number formatting, exactly ------------------------------------------------

/** Python's round(x, digits): the exact binary value rounded to `digits` decimals, ties to even. */
export function pyRound(x, digits) {
  return Number(fixed(x, digits));
}

/** Python's f"{x:.{digits}f}". JavaScript's toFixed rounds exact ties up; Python rounds them to even. */
export function fixed(x, digits) {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) return String(x);
  // toFixed(100) is the exact decimal value of the double for every magnitude that matters here.
  const exact = Math.abs(x).toFixed(100);
  const [whole, fraction] = exact.split(".");
  const kept = BigInt(whole + fraction.slice(0, digits));
  const rest = fraction.slice(digits);
  const half = "5".padEnd(rest.length, "0");
  const up = rest > half || (rest === half && kept % 2n === 1n);
  const digitsText = (up ? kept + 1n : kept).toString().padStart(digits + 1, "0");
  const sign = x < 0 && (up || kept !== 0n) ? "-" : "";
  const head = digitsText.slice(0, digitsText.length - digits);
  return digits ? `${sign}${head}.${digitsText.slice(-digits)}` : `${sign}${head}`;
}

function group(text) {
  const [head, tail] = text.split(".");
  const sign = head.startsWith("-") ? "-" : "";
  const digits = sign ? head.slice(1) : head;
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}${grouped}${tail === undefined ? "" : `.${tail}`}`;
}

/** Python's f"{x:g}" (6 significant digits, no trailing zeros). */
export function formatG(x) {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const exponent = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(6)))));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, power] = x.toExponential(5).split("e");
    const trimmed = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
    const sign = power.startsWith("-") ? "-" : "+";
    return `${trimmed}e${sign}${power.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  const text = fixed(x, Math.max(0, 5 - exponent));
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

/** Python's math.isclose with its default relative tolerance. */
function isClose(a, b) {
  return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}
