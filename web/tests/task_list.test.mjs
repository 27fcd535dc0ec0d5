import { test } from "node:test";
import assert from "node:assert/strict";

import {
  PAGE_SIZE, emptyList, leftTodayText, modelBadge, nextPage, rowKey, rowView, totalsText, viewPath, withLiveRow, withPage,
} from "../lib/task_list.js";

const NOW = new Date(2026, 11, 10, 15, 30).getTime() / 1000; // a local afternoon
let serial = 0;

function row(fields = {}) {
  serial += 1;
  return {
    task_id: String(880000 + serial), external_task_id: `ext-${serial}`, state: "succeeded",
    created_at: NOW - serial * 60, updated_at: NOW, prompt: "a red kite over the dunes", mode: "pro", seconds: 5,
    video_input: false, label: "5 s · pro", estimate_text: "≈ $0.56", estimate_usd: 0.56, actual_usd: null,
    actual_units: "", message: "", on_disk: true,
    file: { filename: `kling_${880000 + serial}.mp4`, subfolder: "cometapi_omni", type: "output" },
    thumb: `/cometapi_omni/tasks/${880000 + serial}/thumb`, age_days: 0.01, expires_in_days: null,
    expiring: false, expired: false, collecting: false, model: "kling-video-o1", model_tag: "O1", sound: false, shots: 0,
    auto_shots: false, ...fields,
  };
}

function answer(rows, { offset = 0, total = rows.length } = {}) {
  return {
    tasks: rows, total, offset, limit: PAGE_SIZE, now: NOW,
    totals: { today: { tasks: 2, seconds: { pro: 10 }, usd: 1.12 }, last_30_days: { tasks: 3, seconds: { pro: 10, std: 5 }, usd: 1.54 } },
    daily_limit_usd: 5, left_today_usd: 3.88, rates_source: "Kling's list price",
  };
}

test("a row as the sidebar shows it: when, prompt, what it bills, estimate and charge, state, file", () => {
  const view = rowView(row({ created_at: NOW - 3600, actual_usd: 0.56, actual_units: "4" }), NOW);
  assert.equal(view.when, `today ${new Date((NOW - 3600) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`);
  assert.equal(view.prompt, "a red kite over the dunes");
  assert.equal(view.label, "5 s · pro");
  assert.equal(view.cost, "≈ $0.56 · charged $0.56 (4 units)");
  assert.equal(view.state, "saved");
  assert.equal(view.level, "ok");
  assert.deepEqual(view.marks, []);
});

test("states read as words; failures carry their message", () => {
  const text = (fields) => rowView(row(fields), NOW);
  assert.equal(text({ state: "sending", on_disk: false, file: null }).state, "sending…");
  assert.equal(text({ state: "queued", on_disk: false, file: null }).state, "queued");
  assert.equal(text({ state: "processing", on_disk: false, file: null }).state, "processing");
  assert.equal(text({ state: "succeeded", on_disk: false, file: null }).state, "finished, not saved yet");
  assert.equal(text({ state: "succeeded", on_disk: false, file: null, collecting: true }).state, "downloading…");
  assert.equal(text({ state: "processing", on_disk: false, file: null, collecting: true }).state, "processing (being collected)");
  const failed = text({ state: "failed", on_disk: false, file: null, message: "Failure to pass the risk control system" });
  assert.deepEqual([failed.state, failed.level], ["failed: Failure to pass the risk control system", "error"]);
  assert.equal(text({ state: "rejected", message: "429 too many tasks" }).state, "refused, nothing made: 429 too many tasks");
  const uncertain = text({ state: "uncertain", task_id: null, message: "the answer was lost" });
  assert.deepEqual([uncertain.state, uncertain.level], ["uncertain: the answer was lost", "warn"]);
});

test("older tasks show their date; the 30-day marks warn before Kling deletes the result", () => {
  const old = rowView(row({ created_at: NOW - 27 * 86400, on_disk: false, file: null, thumb: null, age_days: 27,
    expires_in_days: 3, expiring: true }), NOW);
  const date = new Date((NOW - 27 * 86400) * 1000);
  assert.ok(old.when.startsWith(date.toLocaleDateString([], { month: "short", day: "numeric" })), old.when);
  assert.deepEqual(old.marks, ["Kling deletes it in 3 days: collect it now"]);
  assert.equal(old.level, "warn");
  const lost = rowView(row({ on_disk: false, file: null, age_days: 31, expires_in_days: 0, expiring: true, expired: true }), NOW);
  assert.deepEqual(lost.marks, ["older than 30 days: Kling has probably deleted it"]);
  const soon = rowView(row({ on_disk: false, file: null, expires_in_days: 0.4, expiring: true }), NOW);
  assert.deepEqual(soon.marks, ["Kling deletes it in less than a day: collect it now"]);
  assert.equal(rowView(row({ created_at: NOW - 86400 - 60 }), NOW).when.startsWith("yesterday "), true);
});

test("a task collected by id has no known price; a long prompt is cut", () => {
  const view = rowView(row({ mode: "", label: "", estimate_text: "", estimate_usd: null, prompt: "x".repeat(100) + "\nmore" }), NOW);
  assert.equal(view.label, "mode and length unknown");
  assert.equal(view.cost, "no estimate");
  assert.equal(view.prompt.length, 80);
  assert.ok(view.prompt.endsWith("…"));
  assert.equal(rowView(row({ prompt: "" }), NOW).prompt, "(no prompt: collected by id)");
});

test("the file opens through ComfyUI's /view", () => {
  assert.equal(viewPath({ filename: "kling_1.mp4", subfolder: "cometapi_omni", type: "output" }),
    "/view?filename=kling_1.mp4&subfolder=cometapi_omni&type=output");
  assert.equal(viewPath({ filename: "a b&c.mp4", subfolder: "", type: "output" }), "/view?filename=a+b%26c.mp4&subfolder=&type=output");
  assert.equal(viewPath(null), null);
});

test("totals read like the CLI's, and what is left of the daily limit", () => {
  assert.equal(totalsText({ tasks: 2, seconds: { std: 5, pro: 10 }, usd: 1.54 }), "2 tasks · pro 10 s, std 5 s · ≈ $1.54");
  assert.equal(totalsText({ tasks: 1, seconds: { std: 7.5 }, usd: 0.63 }), "1 task · std 7.5 s · ≈ $0.63");
  assert.equal(totalsText({ tasks: 0, seconds: {}, usd: 0 }), "0 tasks · 0 s · ≈ $0.00");
  assert.equal(leftTodayText(5, 3.88), "Daily limit $5.00: $3.88 left today");
  assert.equal(leftTodayText(0, null), "No daily limit (Settings › CometAPI › Spending)");
});

test("paging: 50 rows at a time, never past the total", () => {
  let list = emptyList();
  assert.deepEqual(nextPage(list), { offset: 0, limit: PAGE_SIZE });
  const first = Array.from({ length: PAGE_SIZE }, () => row());
  list = withPage(list, answer(first, { total: 120 }));
  assert.equal(list.rows.length, 50);
  assert.deepEqual([list.total, list.leftUsd, list.limitUsd, list.totals.today.tasks], [120, 3.88, 5, 2]);
  assert.deepEqual(nextPage(list), { offset: 50, limit: PAGE_SIZE });
  const second = Array.from({ length: PAGE_SIZE }, () => row());
  list = withPage(list, answer(second, { offset: 50, total: 120 }));
  const third = Array.from({ length: 20 }, () => row());
  list = withPage(list, answer(third, { offset: 100, total: 120 }));
  assert.equal(list.rows.length, 120);
  assert.equal(nextPage(list), null);
});

test("a live row replaces its row in place; a new task goes on top and shifts the paging", () => {
  const rows = [row({ state: "processing", on_disk: false, file: null }), row(), row()];
  let list = withPage(emptyList(), answer(rows, { total: 10 }));
  const done = { ...rows[0], state: "succeeded", on_disk: true };
  list = withLiveRow(list, done);
  assert.deepEqual(list.rows.map(rowKey), rows.map(rowKey));
  assert.equal(list.rows[0].state, "succeeded");
  assert.equal(list.total, 10);

  const fresh = row({ created_at: NOW + 5, state: "queued" });
  list = withLiveRow(list, fresh);
  assert.equal(list.rows[0], fresh);
  assert.equal(list.total, 11);
  assert.deepEqual(nextPage(list), { offset: 4, limit: PAGE_SIZE });

  // A row older than what is loaded comes with its page, not now.
  const deep = row({ created_at: NOW - 10 * 86400 });
  assert.equal(withLiveRow(list, deep), list);
});

test("live rows before the first page are left to it (an old task's event must not shift the paging)", () => {
  const list = emptyList();
  assert.equal(withLiveRow(list, row({ created_at: NOW - 5 * 86400 })), list);
  assert.deepEqual(nextPage(list), { offset: 0, limit: PAGE_SIZE });
});

test("a row that gets its task id is the same row (keyed by its external id)", () => {
  const sending = row({ task_id: null, state: "sending", on_disk: false, file: null });
  let list = withPage(emptyList(), answer([sending]));
  list = withLiveRow(list, { ...sending, task_id: "999", state: "queued" });
  assert.equal(list.rows.length, 1);
  assert.equal(list.rows[0].task_id, "999");
  const adopted = row({ external_task_id: null });
  assert.equal(rowKey(adopted), `task:${adopted.task_id}`);
});

test("refetching the first page merges: new rows on top, known rows updated, later pages kept", () => {
  const rows = Array.from({ length: PAGE_SIZE }, () => row());
  let list = withPage(emptyList(), answer(rows, { total: 60 }));
  list = withPage(list, answer([row(), row()], { offset: 50, total: 60 }));
  const newer = [row({ created_at: NOW + 20 }), row({ created_at: NOW + 10 })];
  const top = [...newer, { ...rows[0], state: "failed" }, ...rows.slice(1, 48)];
  list = withPage(list, answer(top, { offset: 0, total: 62 }));
  assert.equal(list.rows.length, 54);
  assert.deepEqual(list.rows.slice(0, 3).map(rowKey), [...newer, rows[0]].map(rowKey));
  assert.equal(list.rows[2].state, "failed");
  assert.deepEqual(nextPage(list), { offset: 54, limit: PAGE_SIZE });
});

test("of two rows of one task the later read wins, whichever arrives last", () => {
  const processing = row({ state: "processing", on_disk: false, file: null, collecting: true, as_of: NOW + 1 });
  const saved = { ...processing, state: "succeeded", on_disk: true, collecting: false, as_of: NOW + 3 };
  let list = withPage(emptyList(), answer([{ ...processing, collecting: false, as_of: NOW }]));
  list = withLiveRow(list, saved); // the event: collected
  // The sidebar's page was read before the event but answered after it: the saved row stays.
  list = withPage(list, answer([processing]));
  assert.equal(list.rows[0].state, "succeeded");
  // An event built earlier than what is shown, arriving late, changes nothing either.
  list = withLiveRow(list, { ...processing, as_of: NOW + 2 });
  assert.equal(list.rows[0].state, "succeeded");
  // A later read takes over, and so does one of the same moment.
  list = withLiveRow(list, { ...saved, message: "kept", as_of: NOW + 3 });
  assert.equal(list.rows[0].message, "kept");
  list = withPage(list, answer([{ ...saved, on_disk: false, as_of: NOW + 9 }]));
  assert.equal(list.rows[0].on_disk, false);
});

test("each row says what made it, compactly: model, sound, shots", () => {
  const badge = (fields) => rowView(row(fields), NOW).model;
  assert.deepEqual(badge({}), { text: "O1", title: "Kling O1 (kling-video-o1)" });
  assert.deepEqual(badge({ model: "kling-v3-omni", model_tag: "v3", sound: true, shots: 3, label: "12 s in 3 shots · pro · v3 + sound" }),
    { text: "v3 · sound · 3 shots", title: "Kling 3.0 Omni (kling-v3-omni), with native sound, a storyboard of 3 shots" });
  assert.deepEqual(badge({ model: "kling-v3-omni", model_tag: "v3", shots: 1 }).text, "v3 · 1 shot");
  assert.deepEqual(badge({ model: "kling-v3-omni", model_tag: "v3", auto_shots: true }),
    { text: "v3 · auto shots", title: "Kling 3.0 Omni (kling-v3-omni), cut into shots by Kling" });
  // Collected by id (nobody knows), or a row from a server that sends no model: no badge.
  assert.deepEqual(badge({ model: "", model_tag: "" }), { text: "", title: "" });
  assert.deepEqual(modelBadge({ task_id: "1" }), { text: "", title: "" });
  // A model a newer version journalled is named as it is.
  assert.deepEqual(badge({ model: "kling-v4-omni", model_tag: "kling-v4-omni" }),
    { text: "kling-v4-omni", title: "kling-v4-omni" });
});

test("a row of a journal shared by several machines says which machine made it and which one holds its video", () => {
  const elsewhere = rowView(row({ machine: "render-01", saved_on: "render-02", on_disk: false, file: null, thumb: null }), NOW);
  assert.equal(elsewhere.machine, "made on render-01");
  assert.equal(elsewhere.state, "saved on render-02");
  assert.equal(elsewhere.level, "ok");
  const alone = rowView(row({}), NOW);
  assert.equal(alone.machine, "");
  assert.equal(alone.state, "saved");
});
