import { test } from "node:test";
import assert from "node:assert/strict";

import { RATE_FIELDS, RATE_GROUPS, numberFromInput, rateLabel, ratesSourceText, todayText } from "../lib/spending.js";
import { DEFAULT_RATES } from "../lib/pricing.js";

const answer = (limit, usd, left) => ({
  settings: { daily_limit_usd: limit, rates: {}, background_collect: true, max_in_flight: 0 },
  today: { usd, left_usd: left },
});

test("today's spend and what is left of the limit", () => {
  assert.equal(todayText(answer(5, 0.42, 4.58)), "Spent today ≈ $0.42 · $4.58 left of $5.00");
  assert.equal(todayText(answer(0, 0.42, null)), "Spent today ≈ $0.42 · no limit");
  assert.equal(todayText(answer(0.5, 0.84, 0)), "Spent today ≈ $0.84 · nothing left of $0.50: new tasks are refused until tomorrow");
  assert.equal(todayText(null), "Today's spend is not known (is the pack loaded on this server?).");
});

test("a daily limit the server cannot read is said, with how to repair it", () => {
  const text = todayText({ ...answer(10, 0, 10), limit_unknown: "The daily limit in /u/settings.json cannot be read: cut short." });
  assert.equal(text, "The daily limit in /u/settings.json cannot be read: cut short. Submit refuses until it can: type the "
    + "daily limit here to save a good file (the damaged one is kept beside it).");
});

test("a bad daily limit in a file that reads promises no file kept aside: a save replaces only the limit", () => {
  const text = todayText({ ...answer(10, 0, 10), limit_set_aside: false,
    limit_unknown: "The daily limit in /u/settings.json cannot be read: daily_limit_usd is -1." });
  assert.equal(text, "The daily limit in /u/settings.json cannot be read: daily_limit_usd is -1. Submit refuses until it "
    + "can: type the daily limit here to save it.");
});

test("what a field holds becomes a number to send; anything else is said before sending", () => {
  assert.deepEqual(numberFromInput("5", "daily limit"), { value: 5 });
  assert.deepEqual(numberFromInput(" 0.25 ", "daily limit"), { value: 0.25 });
  assert.deepEqual(numberFromInput("-1", "daily limit"), { value: -1 }); // the server says what is allowed
  assert.deepEqual(numberFromInput("", "daily limit"), { error: "Type a number for the daily limit." });
  assert.deepEqual(numberFromInput("abc", "pro"), { error: "Type a number for the pro." });
  assert.deepEqual(numberFromInput("2.5", "tasks in flight", { whole: true }), { error: "Type a whole number for the tasks in flight." });
  assert.deepEqual(numberFromInput("3", "tasks in flight", { whole: true }), { value: 3 });
});

test("the rate fields are the server's rate names, grouped per model, each with a readable name", () => {
  assert.deepEqual(RATE_GROUPS.map((g) => [g.model, g.title, g.fields.map((f) => f.name)]), [
    ["kling-video-o1", "Kling O1 (kling-video-o1)", ["std", "pro", "std_with_video", "pro_with_video"]],
    ["kling-v3-omni", "Kling 3.0 Omni (kling-v3-omni)",
      ["v3_std", "v3_pro", "v3_std_with_sound", "v3_pro_with_sound", "v3_std_with_video", "v3_pro_with_video"]],
    [null, "Charges reported by Kling", ["usd_per_unit"]],
  ]);
  // Every name the server keeps (kling_omni.pricing.Rates, mirrored by DEFAULT_RATES), each once.
  assert.deepEqual(RATE_FIELDS.map((f) => f.name).sort(), Object.keys(DEFAULT_RATES).sort());
  assert.deepEqual(RATE_FIELDS.map(rateLabel), ["O1 std", "O1 pro", "O1 std, with a video input", "O1 pro, with a video input",
    "v3 std", "v3 pro", "v3 std, with sound", "v3 pro, with sound", "v3 std, with a video input", "v3 pro, with a video input",
    "one Kling unit"]);
  assert.ok(RATE_FIELDS.every((f) => f.label && f.unit));
});

test("the rates' source: the shipped table's, or the user's own (named as the panel names them)", () => {
  const shipped = { ...DEFAULT_RATES };
  assert.equal(ratesSourceText({ settings: { rates: shipped }, defaults: { rates: shipped }, rates_source: "Kling's list price" }),
    "Shipped rates: Kling's list price");
  assert.equal(ratesSourceText({ settings: { rates: { ...shipped, pro: 0.2 } }, defaults: { rates: shipped }, rates_source: "Kling's list price" }),
    "Your rates (O1 pro differs from the shipped table). Shipped: Kling's list price");
  assert.equal(ratesSourceText({ settings: { rates: { ...shipped, v3_pro_with_sound: 0.2, usd_per_unit: 0.1 } },
    defaults: { rates: shipped }, rates_source: "Kling" }),
  "Your rates (v3 pro, with sound; one Kling unit differ from the shipped table). Shipped: Kling");
});
