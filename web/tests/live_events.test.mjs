import { test } from "node:test";
import assert from "node:assert/strict";

import { eventNeed } from "../lib/live_events.js";

const list = { loaded: true, rows: [{ task_id: "31", external_task_id: "e31", as_of: 100.5 }] };

test("an event about a task asks for its row unless the row here was read after the change", () => {
  assert.equal(eventNeed(list, { task_id: "31", as_of: 101 }), "row");
  assert.equal(eventNeed(list, { task_id: "31", as_of: 100.5 }), null);
  assert.equal(eventNeed(list, { task_id: "31", as_of: 99 }), null);
  assert.equal(eventNeed(list, { task_id: "32", as_of: 1 }), "row"); // a task not listed yet
  assert.equal(eventNeed(list, { task_id: "31" }), "row"); // no stamp: read it
});

test("an intent without a task id asks for the first page; nothing before the list is loaded", () => {
  assert.equal(eventNeed(list, { task_id: null, as_of: 101 }), "page");
  assert.equal(eventNeed({ loaded: false, rows: [] }, { task_id: "31", as_of: 101 }), null);
  assert.equal(eventNeed(list, null), null);
  assert.equal(eventNeed(list, "31"), null);
});
