import { test } from "node:test";
import assert from "node:assert/strict";

import { keyStatusText, keyTestText, taskIdFromOutput, taskIdText, textColumns } from "../lib/format.js";

test("key status wording follows the masked status", () => {
  assert.equal(keyStatusText({ set: true, source: "store", ends_with: "7f3a", env_overrides: false, stored: true }),
    "Key saved on the server ending in …7f3a.");
  assert.equal(keyStatusText({ set: true, source: "env", ends_with: "9e9e", env_overrides: true, stored: true }),
    "Using the COMETAPI_KEY environment variable of the server ending in …9e9e. A key saved here is ignored while it is set.");
  assert.equal(keyStatusText({ set: true, source: "store", ends_with: null, env_overrides: false, stored: true }),
    "Key saved on the server.");
  assert.match(keyStatusText({ set: false, source: null, ends_with: null }), /^No key set/);
  assert.match(keyStatusText(undefined), /unknown/);
});

test("key status never shows more than four characters even if given more", () => {
  const text = keyStatusText({ set: true, source: "store", ends_with: "sk-secretsecret7f3a" });
  assert.ok(!text.includes("secret"));
  assert.ok(text.includes("…7f3a"));
});

test("key test answers", () => {
  assert.deepEqual(keyTestText({ ok: true, message: "Key works." }), { ok: true, text: "✓ Key works." });
  assert.deepEqual(keyTestText({ ok: false, message: "HTTP 401: invalid token" }), { ok: false, text: "✗ HTTP 401: invalid token" });
  assert.deepEqual(keyTestText({ ok: "yes" }), { ok: false, text: "✗ The key did not work." });
  assert.equal(keyTestText(null).ok, false);
});

test("task id from the Poll node's executed payload", () => {
  assert.equal(taskIdFromOutput({ task_id: ["878106484537192522"], images: [], animated: [true] }), "878106484537192522");
  assert.equal(taskIdFromOutput({ task_id: "42" }), "42");
  assert.equal(taskIdFromOutput({ images: [] }), "");
  assert.equal(taskIdFromOutput(null), "");
  assert.equal(taskIdText("42"), "Task id: 42");
  assert.equal(taskIdText(""), "");
});

test("a Chinese, Japanese or Korean character takes two columns of a line, a Latin one one", () => {
  assert.equal(textColumns("abc"), 3);
  assert.equal(textColumns("未连接参考"), 10);
  assert.equal(textColumns("タスク ID"), 9);
  assert.equal(textColumns("작업 ID"), 7);
  assert.equal(textColumns("≈ $0.56："), 9); // the full-width colon is wide, ≈ is not
});
