// The pack's own words in the user's language: one table per language (web/i18n/<lang>.js), in
// the language the frontend's Comfy.Locale names (web/locale.js follows it). A language without
// a table (e.g. zh-TW, which the pack's locales/ has no folder for either) reads English, as the
// frontend itself falls back. Pure: Node tests it, and every table against English.
//
// Placeholders are {name}. A count picks "<key>.one" for 1 and "<key>.other" otherwise; languages
// without plural forms give both the same text.
import en from "../i18n/en.js";
import ja from "../i18n/ja.js";
import ko from "../i18n/ko.js";
import zh from "../i18n/zh.js";

export const TABLES = { en, zh, ja, ko };
const PLACEHOLDER = /\{(\w+)\}/g;

let current = "en";

/** The table's language for a frontend locale ("zh", "ja", "ko", "en"...): its own, or English. */
export function languageFor(locale) {
  return Object.hasOwn(TABLES, locale) ? locale : "en";
}

/** Read in `locale` from now on; returns the language chosen. */
export function setLanguage(locale) {
  current = languageFor(locale);
  return current;
}

export function language() {
  return current;
}

/** The text of `key` in the current language (English where a table lacks it), placeholders filled. */
export function t(key, params) {
  const text = TABLES[current][key] ?? en[key] ?? key;
  if (!params) return text;
  return text.replace(PLACEHOLDER, (whole, name) => (Object.hasOwn(params, name) ? String(params[name]) : whole));
}

/** t() for a count: "<key>.one" when count is 1, else "<key>.other"; {count} is the count. */
export function tn(key, count, params = {}) {
  return t(`${key}.${count === 1 ? "one" : "other"}`, { count, ...params });
}

/** The locale dates and times are written in: the browser's own for English, else the language's. */
export function dateLocale() {
  return current === "en" ? [] : current;
}

/** The placeholders a text uses, sorted: what every translation of it must use too. */
export function placeholders(text) {
  return [...new Set([...String(text).matchAll(PLACEHOLDER)].map((m) => m[1]))].sort();
}
