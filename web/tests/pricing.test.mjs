import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { actualUsd, cost, DEFAULT_RATES, formatG, makeRates, money, pyRound } from "../lib/pricing.js";

// The same cases kling_omni/pricing.py is tested against: the two cannot drift apart.
const CASES = JSON.parse(readFileSync(new URL("../../tests/pricing_cases.json", import.meta.url), "utf8")).cases;

test("every case of tests/pricing_cases.json prices as in Python", () => {
  assert.ok(CASES.length >= 9);
  for (const c of CASES) {
    const priced = cost(c.mode, c.seconds, c.video_input, makeRates(c.rates ?? {}),
      { model: c.model, sound: c.sound, shots: c.shots });
    assert.deepEqual([priced.text, priced.usdLow, priced.usdHigh], [c.text, c.usd_low, c.usd_high], JSON.stringify(c));
  }
});

test("the shipped rates are Python's Rates()", () => {
  // kling_omni/pricing.py's Rates(): O1 under its old names, v3 under v3_ names (contract §12.2)
  assert.deepEqual({ ...DEFAULT_RATES }, { std: 0.084, pro: 0.112, std_with_video: 0.126, pro_with_video: 0.168,
    v3_std: 0.084, v3_pro: 0.112, v3_std_with_sound: 0.112, v3_pro_with_sound: 0.14, v3_std_with_video: 0.126,
    v3_pro_with_video: 0.168, usd_per_unit: 0.14 });
});

test("money() formats as Python's f-strings, ties to even and thousands grouped", () => {
  // Each expected value is what kling_omni.pricing.money printed for it.
  const expected = [[0.125, "$0.12"], [0.375, "$0.38"], [2.625, "$2.62"], [0.005, "$0.005"], [0.0049999, "$0.005"],
    [1234.5, "$1,234.50"], [0.56, "$0.56"], [1.176, "$1.18"], [0, "$0.00"], [99999.995, "$99,999.99"],
    [0.009995, "$0.010"], [-0.005, "$-0.005"], [100000, "$100,000.00"]];
  for (const [value, text] of expected) assert.equal(money(value), text, String(value));
});

test("rounding and %g as Python does them", () => {
  assert.deepEqual([pyRound(0.03125, 4), pyRound(2.5, 0), pyRound(3.5, 0), pyRound(1.176, 2)], [0.0312, 2, 4, 1.18]);
  assert.deepEqual([formatG(5), formatG(7.5), formatG(123456.7), formatG(1e6), formatG(0.0001), formatG(1e-5)],
    ["5", "7.5", "123457", "1e+06", "0.0001", "1e-05"]);
});

test("a base edit is a range over the input lengths; seconds are billed whole", () => {
  const edit = cost("std", null, true);
  assert.equal(edit.label, "length of the input video, 3–10 s · std");
  assert.equal(edit.usd, "≈ $0.38–$1.26");
  assert.equal(cost("pro", 4.4, true).usdHigh, pyRound(4 * 0.168, 4));
  assert.equal(cost("pro", 0.2, false).usdHigh, 0.112); // at least one second
  assert.throws(() => cost("ultra", 5, false), /no rate for kling-video-o1 in mode "ultra"/);
  assert.throws(() => cost("pro", 5, false, DEFAULT_RATES, { sound: true }), /no rate for kling-video-o1 in mode "pro" with sound/);
  assert.throws(() => cost("pro", 5, false, DEFAULT_RATES, { model: "kling-v9" }), /no rate for kling-v9/);
});

test("rates from the settings lay over the shipped ones; bad values are ignored", () => {
  const rates = makeRates({ pro: 0.2, std: -1, std_with_video: "x", usd_per_unit: 0.1, extra: 5 });
  assert.deepEqual({ ...rates }, { ...DEFAULT_RATES, pro: 0.2, usd_per_unit: 0.1 });
  assert.equal(makeRates(null).pro, DEFAULT_RATES.pro);
});

test("the actual charge: Kling's units at the user's unit price", () => {
  assert.equal(actualUsd("4"), 0.56);
  assert.equal(actualUsd(2.5, makeRates({ usd_per_unit: 0.2 })), 0.5);
  assert.deepEqual([actualUsd(""), actualUsd(null), actualUsd("-1"), actualUsd("abc")], [null, null, null, null]);
});
