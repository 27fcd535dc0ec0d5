import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { TABLES, language, languageFor, placeholders, setLanguage, t, tn } from "../lib/i18n.js";
import { graphPriceText } from "../lib/graph_price.js";
import { leftTodayText, totalsText } from "../lib/task_list.js";
import { keyStatusText } from "../lib/format.js";

const en = TABLES.en;
const others = Object.keys(TABLES).filter((lang) => lang !== "en");

test("every language has every key of English and no other", () => {
  for (const lang of others) {
    const keys = Object.keys(TABLES[lang]);
    assert.deepEqual(Object.keys(en).filter((k) => !keys.includes(k)), [], `${lang} lacks these keys`);
    assert.deepEqual(keys.filter((k) => !(k in en)), [], `${lang} has keys English has not`);
  }
});

test("every translation uses exactly the placeholders of the English text", () => {
  for (const lang of others) {
    for (const [key, text] of Object.entries(en)) {
      assert.deepEqual(placeholders(TABLES[lang][key]), placeholders(text), `${lang} ${key}`);
    }
  }
});

test("every text is a string, none empty but the separators", () => {
  for (const [lang, table] of Object.entries(TABLES)) {
    for (const [key, text] of Object.entries(table)) assert.equal(typeof text, "string", `${lang} ${key}`);
    for (const [key, text] of Object.entries(table)) if (!key.startsWith("word.")) assert.ok(text.trim(), `${lang} ${key}`);
  }
});

test("a count picks one or other, and both exist wherever one does", () => {
  for (const key of Object.keys(en).filter((k) => k.endsWith(".one"))) {
    assert.ok(`${key.slice(0, -4)}.other` in en, key);
  }
  assert.equal(tn("price.tasks", 1), "1 task");
  assert.equal(tn("price.tasks", 3), "3 tasks");
});

test("each table is one JSON object as its default export, so Python reads it too", () => {
  for (const lang of Object.keys(TABLES)) {
    const source = readFileSync(new URL(`../i18n/${lang}.js`, import.meta.url), "utf8");
    const body = source.replace(/^(\s*\/\/[^\n]*\n)*\s*export default\s*/, "").trim().replace(/;$/, "");
    assert.deepEqual(JSON.parse(body), TABLES[lang], lang);
  }
});

test("the frontend's locale picks a table; one without a table reads English", () => {
  assert.equal(languageFor("zh"), "zh");
  assert.equal(languageFor("ja"), "ja");
  assert.equal(languageFor("ko"), "ko");
  assert.equal(languageFor("zh-TW"), "en"); // the pack has no Traditional Chinese: as /i18n, English
  assert.equal(languageFor("fr"), "en");
  assert.equal(languageFor(undefined), "en");
  assert.equal(languageFor("toString"), "en");
});

test("texts follow the language, placeholders filled, English where a key is missing", () => {
  try {
    assert.equal(setLanguage("zh"), "zh");
    assert.equal(language(), "zh");
    assert.equal(t("tasks.today", { totals: "x" }), "今天：x");
    assert.equal(leftTodayText(0, 0), "无每日限额（设置 › CometAPI › 花费）");
    assert.match(keyStatusText({ set: true, source: "store", ends_with: "7f3a" }), /^密钥已保存在服务器上，末尾为 …7f3a。$/);
    // The price label itself ("5 s · pro", "≈ $0.56") is notation Python writes too: it stays.
    assert.equal(graphPriceText({ submits: 1, tasks: 2, usdLow: 1.12, usdHigh: 1.12, unpriced: 0, refused: 0 }),
      "整个图 ≈ $1.12：1 个提交节点，2 个任务");
    assert.match(totalsText({ tasks: 2, seconds: { pro: 10 }, usd: 1.12 }), /^2 个任务 · pro 10 s · ≈ \$1\.12$/);
    assert.equal(t("no.such.key"), "no.such.key");
    setLanguage("ja");
    assert.equal(t("tasks.title"), "Kling Omni タスク");
    setLanguage("ko");
    assert.equal(t("tasks.title"), "Kling Omni 작업");
  } finally {
    setLanguage("en");
  }
  assert.equal(t("tasks.today", { totals: "x" }), "Today: x");
});
