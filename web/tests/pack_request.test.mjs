import { test } from "node:test";
import assert from "node:assert/strict";

import { packRequestInit } from "../lib/pack_request.js";

test("every state-changing call says JSON, body or not (the routes refuse it otherwise)", () => {
  assert.deepEqual(packRequestInit("POST", { key: "sk-x" }),
    { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"key":"sk-x"}' });
  assert.deepEqual(packRequestInit("POST"), { method: "POST", headers: { "Content-Type": "application/json" } });
  assert.deepEqual(packRequestInit("DELETE"), { method: "DELETE", headers: { "Content-Type": "application/json" } });
});

test("reads stay simple requests", () => {
  assert.deepEqual(packRequestInit("GET"), { method: "GET" });
});
