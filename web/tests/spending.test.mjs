import { test } from "node:test";
import assert from "node:assert/strict";

import { RATE_FIELDS, numberFromInput, ratesSourceText, todayText } from "../lib/spending.js";

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

test("what a field holds becomes a number to send; anything else is said before sending", () => {
  assert.deepEqual(numberFromInput("5", "daily limit"), { value: 5 });
  assert.deepEqual(numberFromInput(" 0.25 ", "daily limit"), { value: 0.25 });
  assert.deepEqual(numberFromInput("-1", "daily limit"), { value: -1 }); // the server says what is allowed
  assert.deepEqual(numberFromInput("", "daily limit"), { error: "Type a number for the daily limit." });
  assert.deepEqual(numberFromInput("abc", "pro"), { error: "Type a number for the pro." });
  assert.deepEqual(numberFromInput("2.5", "tasks in flight", { whole: true }), { error: "Type a whole number for the tasks in flight." });
  assert.deepEqual(numberFromInput("3", "tasks in flight", { whole: true }), { value: 3 });
});

test("the rate fields are the server's rate names, each with a label", () => {
  assert.deepEqual(RATE_FIELDS.map((f) => f.name), ["std", "pro", "std_with_video", "pro_with_video", "usd_per_unit"]);
  assert.ok(RATE_FIELDS.every((f) => f.label && f.unit));
});

test("the rates' source: the shipped table's, or the user's own", () => {
  const shipped = { std: 0.084, pro: 0.112, std_with_video: 0.126, pro_with_video: 0.168, usd_per_unit: 0.14 };
  assert.equal(ratesSourceText({ settings: { rates: shipped }, defaults: { rates: shipped }, rates_source: "Kling's list price" }),
    "Shipped rates: Kling's list price");
  assert.equal(ratesSourceText({ settings: { rates: { ...shipped, pro: 0.2 } }, defaults: { rates: shipped }, rates_source: "Kling's list price" }),
    "Your rates (pro differs from the shipped table). Shipped: Kling's list price");
});
