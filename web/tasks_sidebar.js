// The Tasks sidebar: every journalled task, newest first, 50 at a time (GET /cometapi_omni/tasks),
// kept current by the server's `cometapi_omni.task` events (no polling: an event names the task,
// whose row is then read through GET /cometapi_omni/tasks/{task_id}), with the totals for
// today and 30 days and what is left of the daily limit. Each task: when, its model (with sound
// and shots: "v3 · sound · 3 shots"), the start of its prompt, what it bills (exact) and its
// estimate and actual charge, its state, its video once on disk (thumbnail, preview and open
// through ComfyUI's /view), the 30-day marks; actions: copy the id, collect now, add a Poll node
// for it. Text goes in with textContent only.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { POLL_NODE } from "./lib/graph_refs.js";
import { eventNeed } from "./lib/live_events.js";
import { graphPriceText } from "./lib/graph_price.js";
import {
  PAGE_SIZE, emptyList, leftTodayText, nextPage, rowKey, rowView, totalsText, viewPath, withLiveRow, withPage,
} from "./lib/task_list.js";
import { onGraphPrice } from "./omni_nodes.js";
import { loadSettings, packCall } from "./pack_api.js";
import { t, tn } from "./lib/i18n.js";
import { followLocale, onLanguageChange } from "./locale.js";

const TAB_ID = "cometapi-omni-tasks";
// Keys of the pack's locales/<lang>/main.json: the frontend translates a sidebar tab's title,
// tooltip and label itself (live, on every version), falling back to the text given.
const TITLE_KEY = "cometapiOmni.tasksTab";
const LABEL_KEY = "cometapiOmni.tasksLabel";
const TASKS_ROUTE = "/cometapi_omni/tasks";
const EVENT = "cometapi_omni.task";
const SETTLE_MS = 300; // events come in bursts (a batch, a download): one refetch after the burst
const COLORS = { ok: "", info: "", warn: "#e0a040", error: "var(--error-text, #ff6b6b)" };
const MUTED = "var(--descrip-text, #999)";

let list = emptyList();
let ui = null; // the panel's elements, built on first open and kept (state survives closing the tab)
let loading = false;
const previews = new Set(); // keys of the rows whose video preview is open
const notes = new Map(); // key -> {text, ok, about}: what an action said, shown until its row's state changes
let timers = {};

function element(tag, props = {}, style = {}) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.style, style);
  return node;
}

function button(text, onClick, label) {
  const b = element("button", { type: "button", textContent: text }, { fontSize: "11px", padding: "1px 6px" });
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

// --- data --------------------------------------------------------------------------------

async function fetchPage(offset, limit) {
  return packCall("GET", `${TASKS_ROUTE}?offset=${offset}&limit=${limit}`);
}

async function loadMore() {
  const page = nextPage(list);
  if (!page || loading) return;
  loading = true;
  showProblem("");
  try {
    list = withPage(list, await fetchPage(page.offset, page.limit));
  } catch (error) {
    showProblem(String(error?.message ?? error));
  } finally {
    loading = false;
    render();
  }
}

/** The first page again (new rows on top, known rows updated), with fresh totals. */
async function loadTop(limit) {
  try {
    list = withPage(list, await fetchPage(0, limit ?? PAGE_SIZE));
    showProblem("");
  } catch (error) {
    showProblem(String(error?.message ?? error));
  }
  render();
}

function later(name, work) {
  clearTimeout(timers[name]);
  timers[name] = setTimeout(work, SETTLE_MS);
}

/** One task's row, read after a live event said it changed (the event itself carries no content). */
async function loadRow(taskId) {
  try {
    const answer = await packCall("GET", `${TASKS_ROUTE}/${encodeURIComponent(taskId)}`);
    if (answer?.task) {
      list = withLiveRow(list, answer.task);
      render();
    }
  } catch {
    // gone from the journal, or refused: the next page read shows what is there
  }
}

function onTaskEvent(event) {
  const detail = event.detail;
  if (eventNeed(list, detail) === "row") loadRow(detail.task_id);
  if (!ui?.root.isConnected) return; // closed: opening it reads the first page and the totals again
  if (detail?.task_id != null) later("totals", () => loadTop(0)); // the totals only (limit 0): what the task counts for changed
  else later("top", () => loadTop()); // a row without a task id changed: its page again
}

// --- actions -----------------------------------------------------------------------------

function addPollNode(taskId) {
  const graph = app.canvas?.graph ?? app.graph; // the graph on screen (a subgraph, when one is open)
  const node = window.LiteGraph?.createNode(POLL_NODE);
  if (!node) throw new Error(t("tasks.noPollNode", { node: POLL_NODE }));
  const [x, y, w, h] = app.canvas?.visible_area ?? [0, 0, 0, 0];
  node.pos = [x + w / 2 - node.size[0] / 2, y + h / 2 - node.size[1] / 2];
  graph.add(node);
  const widget = node.widgets?.find((w) => w.name === "task_id");
  if (widget) {
    widget.value = taskId;
    widget.callback?.(taskId, app.canvas, node);
  }
  app.canvas?.selectNode?.(node);
  graph.setDirtyCanvas?.(true, true);
  return node;
}

async function collectNow(row) {
  const answer = await packCall("POST", `${TASKS_ROUTE}/${encodeURIComponent(row.task_id)}/collect`, {});
  if (answer?.task) list = withLiveRow(list, answer.task);
}

// --- the panel -----------------------------------------------------------------------------

function buildPanel() {
  const root = element("div", {}, {
    display: "flex", flexDirection: "column", height: "100%", minHeight: "0", fontSize: "12px",
    color: "var(--fg-color, #ddd)", boxSizing: "border-box",
  });
  const header = element("div", {}, { padding: "8px 10px", borderBottom: "1px solid var(--border-color, #444)" });
  const title = element("h3", {}, { margin: "0 0 6px", fontSize: "14px" });
  const graph = element("div", {}, { fontWeight: "600", marginBottom: "4px" });
  const today = element("div");
  const month = element("div");
  const left = element("div");
  const note = element("div", {}, { color: MUTED, fontSize: "11px", marginTop: "4px" });
  const problem = element("div", { role: "alert" }, { color: COLORS.error, whiteSpace: "pre-wrap" });
  header.append(title, graph, today, month, left, note, problem);
  const rows = element("ul", {}, { listStyle: "none", margin: "0", padding: "0" });
  const footer = element("div", {}, { padding: "8px 10px", color: MUTED });
  const count = element("span");
  const more = button("", () => loadMore());
  more.style.marginLeft = "8px";
  footer.append(count, more);
  const scroller = element("div", {}, { flex: "1", minHeight: "0", overflowY: "auto" });
  scroller.append(rows, footer);
  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop + scroller.clientHeight > scroller.scrollHeight - 200) loadMore();
  });
  root.append(header, scroller);
  const panel = { root, title, graph, note, today, month, left, problem, rows, count, more, items: new Map() };
  label(panel);
  return panel;
}

/** The panel's fixed words, in the language of the moment. */
function label(panel) {
  panel.title.textContent = t("tasks.title");
  panel.graph.setAttribute("aria-label", t("price.thisGraph"));
  panel.note.textContent = t("tasks.note");
  panel.rows.setAttribute("aria-label", t("tasks.title"));
  panel.more.textContent = tn("tasks.more", PAGE_SIZE);
}

/** Another language: every word again (the rows are drawn anew, not reused). */
function relabel() {
  if (!ui) return;
  label(ui);
  ui.items.clear();
  showGraphPrice(lastGraphPrice);
  render();
}

function showProblem(text) {
  if (ui) ui.problem.textContent = text;
}

let frame = 0;
function render() {
  if (!ui || frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    draw();
  });
}

function draw() {
  const totals = list.totals;
  ui.today.textContent = t("tasks.today", { totals: totals ? totalsText(totals.today) : "…" });
  ui.month.textContent = t("tasks.month", { totals: totals ? totalsText(totals.last_30_days) : "…" });
  ui.left.textContent = list.loaded ? leftTodayText(list.limitUsd, list.leftUsd) : "";
  const items = new Map();
  const children = list.rows.map((row) => {
    const key = rowKey(row);
    const known = ui.items.get(key);
    const item = known && known.row === row ? known : { row, li: rowElement(row) };
    items.set(key, item);
    return item.li;
  });
  ui.items = items;
  if (children.length !== ui.rows.children.length || children.some((li, i) => ui.rows.children[i] !== li)) {
    ui.rows.replaceChildren(...children);
  }
  ui.count.textContent = list.loaded
    ? (list.total ? tn("tasks.count", list.total, { shown: list.rows.length.toLocaleString(), total: list.total.toLocaleString() })
      : t("tasks.empty"))
    : t("tasks.loading");
  ui.more.hidden = !nextPage(list) || !list.loaded;
}

function rowElement(row) {
  const view = rowView(row, list.now || Date.now() / 1000);
  const key = rowKey(row);
  const li = element("li", {}, {
    display: "flex", flexDirection: "column", gap: "2px", padding: "6px 10px",
    borderBottom: "1px solid var(--border-color, #333)",
  });
  li.dataset.taskKey = key;
  if (row.task_id) li.dataset.taskId = row.task_id;
  const file = viewPath(row.file);

  // Thumbnail (a button that opens the preview) beside when it was made and what it bills.
  const top = element("div", {}, { display: "flex", gap: "8px", alignItems: "flex-start" });
  if (row.thumb && file) {
    const thumb = element("button", { type: "button", title: t("tasks.preview") },
      { padding: "0", border: "0", background: "none", cursor: "pointer", flex: "0 0 64px" });
    thumb.setAttribute("aria-label", t("tasks.previewOf", { id: row.task_id }));
    thumb.append(element("img", { src: api.apiURL(row.thumb), alt: "", loading: "lazy" },
      { width: "64px", borderRadius: "3px", display: "block" }));
    thumb.addEventListener("click", () => {
      if (previews.has(key)) previews.delete(key);
      else previews.add(key);
      togglePreview(li, file, previews.has(key));
    });
    top.append(thumb);
  }
  const meta = element("div", {}, { color: MUTED, fontSize: "11px", minWidth: "0" });
  const when = element("div", { textContent: view.when });
  if (view.model.text) {
    // What it was made with, at a glance: "v3 · sound · 3 shots", "O1".
    const badge = element("span", { textContent: view.model.text, title: view.model.title }, {
      marginLeft: "6px", padding: "0 4px", borderRadius: "3px", border: "1px solid var(--border-color, #555)",
      color: "var(--fg-color, #ddd)", whiteSpace: "nowrap",
    });
    badge.setAttribute("aria-label", t("tasks.model", { title: view.model.title }));
    badge.dataset.model = row.model;
    when.append(" ", badge); // the space keeps "today 14:03 v3" apart when read or copied as text
  }
  meta.append(when, element("div", { textContent: `${view.label} · ${view.cost}` }));
  if (view.machine) meta.append(element("div", { textContent: view.machine })); // a journal shared by several machines
  top.append(meta);
  li.append(top);

  li.append(element("div", { textContent: view.prompt, title: row.prompt }, { overflowWrap: "anywhere" }));
  li.append(element("div", { textContent: view.state + (row.task_id ? t("tasks.task", { id: row.task_id }) : "") },
    { color: COLORS[view.level], overflowWrap: "anywhere" }));
  for (const mark of view.marks) li.append(element("div", { textContent: mark }, { color: COLORS.warn }));

  const said = element("div", { role: "status" }, { color: MUTED, fontSize: "11px" });
  const about = `${row.state} ${row.on_disk}`;
  const say = (text, ok = true) => {
    notes.set(key, { text, ok, about });
    said.textContent = text;
    said.style.color = ok ? MUTED : COLORS.error;
  };
  const note = notes.get(key);
  if (note?.about === about) say(note.text, note.ok);
  else notes.delete(key);
  const act = (work) => async () => {
    try {
      const text = await work();
      if (text) say(text);
    } catch (error) {
      say(String(error?.message ?? error), false);
    }
  };
  const actions = element("div", {}, { display: "flex", flexWrap: "wrap", gap: "4px", alignItems: "center" });
  if (row.task_id) {
    const id = row.task_id;
    actions.append(button(t("tasks.copy"), act(async () => {
      await navigator.clipboard.writeText(id);
      return t("tasks.copied", { id });
    }), t("tasks.copyLabel", { id })));
    if (row.collectable) {
      actions.append(button(t("tasks.collect"), act(async () => {
        await collectNow(row);
        render();
        return t("tasks.collecting");
      }), t("tasks.collectLabel", { id })));
    }
    actions.append(button(t("tasks.addPoll"), act(() => {
      addPollNode(id);
      return t("tasks.pollAdded", { id });
    }), t("tasks.addPollLabel", { id })));
  }
  if (file) {
    actions.append(element("a", { href: api.apiURL(file), target: "_blank", rel: "noopener", textContent: t("tasks.open") },
      { fontSize: "11px", color: "var(--p-primary-color, #6cf)" }));
  } else if (row.on_disk) {
    actions.append(element("span", { textContent: t("tasks.outsideOutput") }, { color: MUTED, fontSize: "11px" }));
  }
  li.append(actions, said);
  if (file && previews.has(key)) togglePreview(li, file, true);
  return li;
}

function togglePreview(li, file, open) {
  li.querySelector("video")?.remove();
  if (!open) return;
  li.append(element("video", { src: api.apiURL(file), controls: true, autoplay: true, muted: true, loop: true },
    { width: "100%", borderRadius: "3px", marginTop: "4px" }));
}

function showGraphPrice(total) {
  if (ui) ui.graph.textContent = total ? graphPriceText(total, t("price.thisGraph")) : "";
}

// --- registration ------------------------------------------------------------------------

let lastGraphPrice = null;

app.registerExtension({
  name: "CometAPI.Omni.Tasks",
  setup() {
    followLocale();
    api.addEventListener(EVENT, onTaskEvent);
    onLanguageChange(relabel);
    onGraphPrice((total) => {
      lastGraphPrice = total;
      showGraphPrice(total);
    });
    app.extensionManager.registerSidebarTab({
      id: TAB_ID,
      icon: "pi pi-video",
      title: TITLE_KEY,
      tooltip: TITLE_KEY,
      label: LABEL_KEY,
      type: "custom",
      render(container) {
        // The frontend may call this again for the same container: the one panel moves in once.
        ui ??= buildPanel();
        if (ui.root.parentElement !== container) container.replaceChildren(ui.root);
        // As tall as the sidebar: the totals stay in view and the list scrolls (and loads more) by itself.
        container.style.height = "100%";
        showGraphPrice(lastGraphPrice);
        loadSettings().catch(() => {}); // the rates may have changed elsewhere: the prices follow
        render();
        if (!list.loaded) loadMore();
        else loadTop(); // what changed while it was closed (events keep the rows current meanwhile)
      },
    });
  },
});
