// The Tasks sidebar's data: journalled tasks as the routes give them (nodes/task_rows.py:
// TaskRow), read as words, and the list of them paged 50 at a time and kept current by live
// events. Pure (no DOM, no ComfyUI): Node tests it.

import { MODELS, money, formatG } from "./pricing.js";
import { dateLocale, t, tn } from "./i18n.js";

export const PAGE_SIZE = 50;
const PROMPT_CHARS = 80;
const DAY = 86400;
const RETENTION_DAYS = 30;

/** A row's identity: its intent's external id (it stays when the task id arrives), else its task id. */
export function rowKey(row) {
  return row.external_task_id ? `ext:${row.external_task_id}` : `task:${row.task_id}`;
}

/**
 * Of two rows of one task, the one read from the journal later (`as_of`, server time): a page
 * read before a live event but answered after it must not put the older state back.
 */
function later(known, incoming) {
  return (incoming.as_of ?? Infinity) >= (known.as_of ?? -Infinity) ? incoming : known;
}

/**
 * What a task was made with, compactly: {text: "v3 · sound · 3 shots", title: "Kling 3.0 Omni, with native
 * sound, a storyboard of 3 shots"}, {text: "O1", ...}; empty texts when nobody knows (collected by id).
 */
export function modelBadge(row) {
  const model = row?.model;
  if (!model) return { text: "", title: "" };
  const shots = Number(row.shots) || 0;
  const text = [row.model_tag || MODELS[model]?.tag || model, row.sound ? t("badge.sound") : "",
    shots ? tn("badge.shots", shots) : row.auto_shots ? t("badge.autoShots") : ""].filter(Boolean).join(" · ");
  const title = (MODELS[model] ? `${MODELS[model].title} (${model})` : model) + (row.sound ? t("badge.withSound") : "")
    + (shots ? tn("badge.storyboard", shots) : row.auto_shots ? t("badge.cutByKling") : "");
  return { text, title };
}

/**
 * A TaskRow in words: {when, machine, model, prompt, label, cost, state, level ("ok"|"info"|"warn"|"error"), marks}.
 * `machine` is "made on render-02" for a journal shared by several machines, "" otherwise.
 */
export function rowView(row, now) {
  const marks = [];
  if (row.expired) {
    marks.push(t("row.expired", { days: RETENTION_DAYS }));
  } else if (row.expiring) {
    const days = Math.floor(row.expires_in_days ?? 0);
    marks.push(t("row.expiring", { when: days >= 1 ? tn("row.days", days) : t("row.lessThanADay") }));
  }
  const state = stateText(row);
  return {
    when: whenText(row.created_at, now),
    machine: row.machine ? t("row.madeOn", { machine: row.machine }) : "",
    model: modelBadge(row),
    prompt: promptStart(row.prompt),
    label: row.label || t("row.noLabel"),
    cost: [row.estimate_text || t("row.noEstimate"),
      ...(row.actual_usd != null ? [t("row.charged", { usd: money(row.actual_usd) })
        + (row.actual_units ? t("row.units", { units: row.actual_units }) : "")] : [])]
      .join(" · "),
    state: state.text,
    level: marks.length && state.level !== "error" ? "warn" : state.level,
    marks,
  };
}

function stateText(row) {
  // The server's message stays as it said it (English, as Python raises it: searchable).
  const why = row.message ? t("state.why", { message: row.message }) : "";
  switch (row.state) {
    case "waiting": return { text: t("state.waiting"), level: "info" };
    case "sending": return { text: t("state.sending"), level: "info" };
    case "uncertain": return { text: t("state.uncertain") + why, level: "warn" };
    case "rejected": return { text: t("state.rejected") + why, level: "error" };
    case "failed": return { text: t("state.failed") + why, level: "error" };
    case "ended": return { text: t("state.ended") + why, level: "error" };
    case "succeeded":
      if (row.on_disk) return { text: t("state.saved"), level: "ok" };
      if (row.saved_on) return { text: t("state.savedOn", { machine: row.saved_on }), level: "ok" }; // another machine's disk
      return { text: t(row.collecting ? "state.downloading" : "state.finishedNotSaved"), level: "info" };
    default: // queued, processing, or a word the server reported as it is
      return { text: row.collecting ? t("state.beingCollected", { state: stateWord(row.state) }) : stateWord(row.state), level: "info" };
  }
}

/** "today 14:03", "yesterday 09:12", "Dec 3, 14:03" (local time). */
export function whenText(created, now) {
  const date = new Date(created * 1000);
  const time = date.toLocaleTimeString(dateLocale(), { hour: "2-digit", minute: "2-digit" });
  const today = new Date(now * 1000);
  const midnight = new Date(today.getFullYear(), today.getMonth(), today.getDate()).getTime() / 1000;
  if (created >= midnight) return t("when.today", { time });
  if (created >= midnight - DAY) return t("when.yesterday", { time });
  const sameYear = date.getFullYear() === today.getFullYear();
  const day = date.toLocaleDateString(dateLocale(), sameYear ? { month: "short", day: "numeric" } : { year: "numeric", month: "short", day: "numeric" });
  return t("when.day", { day, time });
}

/** The server's state word in the user's language where the pack knows it (queued, processing), else as it is. */
function stateWord(state) {
  const key = `state.word.${state}`;
  const text = t(key);
  return text === key ? String(state) : text;
}

function promptStart(text) {
  const flat = String(text ?? "").replace(/\s+/g, " ").trim();
  if (!flat) return t("row.noPrompt");
  return flat.length <= PROMPT_CHARS ? flat : `${flat.slice(0, PROMPT_CHARS - 1)}…`;
}

/** ComfyUI's /view path of a TaskRow's file (put behind api.apiURL), or null. */
export function viewPath(file) {
  if (!file?.filename) return null;
  const query = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder ?? "", type: file.type ?? "output" });
  return `/view?${query}`;
}

/** "2 tasks · pro 10 s, std 5 s · ≈ $1.54", as `python -m kling_omni tasks` says it. */
export function totalsText(totals) {
  const seconds = Object.entries(totals?.seconds ?? {}).sort(([a], [b]) => a.localeCompare(b))
    .map(([mode, value]) => `${mode} ${formatG(value)} s`).join(", ") || "0 s";
  const count = totals?.tasks ?? 0;
  return `${tn("price.tasks", count)} · ${seconds} · ≈ ${money(totals?.usd ?? 0)}`;
}

export function leftTodayText(limitUsd, leftUsd) {
  if (!(limitUsd > 0)) return t("tasks.noLimit");
  return t("tasks.left", { limit: money(limitUsd), left: money(leftUsd ?? 0) });
}

// --- the list ----------------------------------------------------------------------------

/** rows: newest first; offset: how far the server's list has been read (the next page starts there). */
export function emptyList() {
  return { rows: [], offset: 0, total: 0, loaded: false, totals: null, limitUsd: 0, leftUsd: null, ratesSource: "", now: 0 };
}

/** The next page to ask for ({offset, limit}), or null when every row is here. */
export function nextPage(list) {
  if (list.loaded && list.offset >= list.total) return null;
  return { offset: list.offset, limit: PAGE_SIZE };
}

/** The list with an answer of GET /cometapi_omni/tasks merged in (the first page again, or the next). */
export function withPage(list, answer) {
  const rows = [...list.rows];
  const index = new Map(rows.map((r, i) => [rowKey(r), i]));
  const newest = rows.length ? rows[0].created_at : -Infinity;
  let above = 0; // rows new since the list was read: the server's later rows moved down by as many
  for (const row of answer.tasks ?? []) {
    const at = index.get(rowKey(row));
    if (at !== undefined) {
      rows[at] = later(rows[at], row);
      continue;
    }
    if (list.loaded && row.created_at > newest) above += 1;
    rows.push(row);
  }
  rows.sort((a, b) => b.created_at - a.created_at); // stable: equal times keep their order
  return {
    rows,
    offset: Math.max(list.offset + above, (answer.offset ?? 0) + (answer.tasks?.length ?? 0)),
    total: answer.total ?? rows.length,
    loaded: true,
    totals: answer.totals ?? list.totals,
    limitUsd: answer.daily_limit_usd ?? list.limitUsd,
    leftUsd: answer.left_today_usd ?? null,
    ratesSource: answer.rates_source ?? list.ratesSource,
    now: answer.now ?? list.now,
  };
}

/** The list with a live row (the `cometapi_omni.task` event): updated in place, or a new task on top. */
export function withLiveRow(list, row) {
  if (!list.loaded) return list; // the first page brings it, where it belongs
  const key = rowKey(row);
  const at = list.rows.findIndex((r) => rowKey(r) === key);
  if (at >= 0) {
    const rows = [...list.rows];
    rows[at] = later(rows[at], row);
    return { ...list, rows };
  }
  if (list.rows.length && row.created_at < list.rows[0].created_at) return list; // it comes with its page
  return { ...list, rows: [row, ...list.rows], offset: list.offset + 1, total: list.total + 1 };
}
