// Settings › CometAPI › Spending: the daily limit (with today's spend), the rates behind every
// estimate, background collection, tasks in flight. They live on the server (settings.json
// beside the key store: the spend guard runs there, for browserless runs too), so each row is
// a render-function setting whose frontend value is never set; every change is POSTed to
// /cometapi_omni/settings and the server's answer (or its 400 text) is shown.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { RATE_FIELDS, RATE_GROUPS, numberFromInput, rateLabel, ratesSourceText, todayText } from "./lib/spending.js";
import { loadSettings, onSettings, saveSettings } from "./pack_api.js";
import en from "./i18n/en.js";
import { t } from "./lib/i18n.js";
import { followLocale } from "./locale.js";

const CATEGORY = ["CometAPI", "Spending"];
const ERROR_COLOR = "var(--error-text, #f66)";
const MUTED_COLOR = "var(--descrip-text, #999)";

function element(tag, props = {}, style = {}) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.style, style);
  return node;
}

function labelled(input, label) {
  input.setAttribute("aria-label", label);
  return input;
}

/** A row's panel: `fill(answer)` shows the server's settings; `message` says how a save went. */
function panel(build) {
  const root = element("div", {}, { display: "flex", flexDirection: "column", gap: "4px", minWidth: "22rem" });
  const message = element("div", { role: "status" }, { whiteSpace: "pre-wrap", fontSize: "0.9em" });
  const say = (text, ok = true) => {
    message.textContent = text;
    message.style.color = ok ? MUTED_COLOR : ERROR_COLOR;
  };
  const save = async (changes, done = t("spend.saved")) => {
    say(t("spend.saving"));
    try {
      await saveSettings(changes);
      say(done);
    } catch (error) {
      say(String(error?.message ?? error), false); // the server's 400 text: nothing was saved
    }
  };
  const fill = build(root, { say, save });
  root.append(message);
  // Every panel follows every answer; a panel the dialog threw away stops listening.
  let seen = false;
  const stop = onSettings((answer) => {
    if (root.isConnected) seen = true;
    else if (seen) return stop();
    fill(answer);
  });
  loadSettings().catch((error) => say(String(error?.message ?? error), false));
  return root;
}

/** A number input that sends its value when it changes (Enter, or leaving it). */
function numberInput(label, { min, max, step, width = "7rem" }, send) {
  const input = labelled(element("input", { type: "number", min, max, step }, { width, padding: "2px 6px" }), label);
  input.addEventListener("change", () => send(input.value));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") input.blur();
  });
  return input;
}

/** Show a server value in an input, unless the user is typing in it. */
function show(input, value) {
  if (document.activeElement !== input) input.value = String(value);
}

function dailyLimitPanel() {
  return panel((root, { say, save }) => {
    const today = element("div");
    const input = numberInput(t("spend.limitLabel"), { min: 0, step: 0.5 }, (text) => {
      const typed = numberFromInput(text, t("spend.limitWhat"));
      if (typed.error) return say(typed.error, false);
      save({ daily_limit_usd: typed.value }, t(typed.value > 0 ? "spend.limitSaved" : "spend.noLimitSaved"));
    });
    const row = element("label", {}, { display: "flex", gap: "6px", alignItems: "center" });
    row.append(input, element("span", { textContent: t("spend.limitUnit") }));
    root.append(row, today);
    return (answer) => {
      show(input, answer.limit_unknown ? "" : answer.settings.daily_limit_usd); // unknown: typing any value saves it
      today.textContent = todayText(answer);
    };
  });
}

function ratesPanel() {
  return panel((root, { say, save }) => {
    // One grid, a heading row per model: the inputs line up across the groups.
    const table = element("div", {}, { display: "grid", gridTemplateColumns: "auto auto 1fr", gap: "4px 8px", alignItems: "center" });
    const inputs = {};
    for (const group of RATE_GROUPS) {
      const heading = element("div", { textContent: group.title, role: "heading" },
        { gridColumn: "1 / -1", fontWeight: "600", marginTop: "6px" });
      heading.setAttribute("aria-level", "4");
      table.append(heading);
      for (const field of group.fields) {
        const name = rateLabel(field);
        const input = numberInput(t("rates.inputLabel", { name, unit: field.unit }), { min: 0, step: 0.001, width: "6rem" }, (text) => {
          const typed = numberFromInput(text, t("rates.what", { name }));
          if (typed.error) return say(typed.error, false);
          save({ rates: { [field.name]: typed.value } }, t("rates.saved", { name, value: typed.value, unit: field.unit }));
        });
        inputs[field.name] = input;
        table.append(element("span", { textContent: field.label }, { paddingLeft: "8px" }), input,
          element("span", { textContent: field.unit }, { color: MUTED_COLOR }));
      }
    }
    const source = element("div", {}, { color: MUTED_COLOR, fontSize: "0.9em" });
    const reset = element("button", { type: "button", textContent: t("rates.reset") }, { alignSelf: "flex-start" });
    let shipped = null;
    reset.addEventListener("click", async () => {
      reset.disabled = true;
      await save({ rates: shipped }, t("rates.resetDone"));
      reset.disabled = false;
    });
    root.append(table, source, reset);
    return (answer) => {
      // A rate this server does not send (an older server: no v3 names) stays empty, not "undefined".
      for (const field of RATE_FIELDS) show(inputs[field.name], answer.settings.rates[field.name] ?? "");
      shipped = answer.defaults?.rates ?? null;
      source.textContent = `${ratesSourceText(answer)} ${t("rates.estimateNote")}`;
      reset.disabled = !shipped;
    };
  });
}

function backgroundPanel() {
  return panel((root, { save }) => {
    const box = labelled(element("input", { type: "checkbox" }), t("collect.label"));
    box.addEventListener("change", () => save({ background_collect: box.checked }, t(box.checked ? "collect.on" : "collect.off")));
    const row = element("label", {}, { display: "flex", gap: "6px", alignItems: "center" });
    row.append(box, element("span", { textContent: t("collect.text") }));
    root.append(row);
    return (answer) => {
      box.checked = Boolean(answer.settings.background_collect);
    };
  });
}

function inFlightPanel() {
  return panel((root, { say, save }) => {
    const input = numberInput(t("inflight.label"), { min: 0, max: 64, step: 1, width: "5rem" }, (text) => {
      const typed = numberFromInput(text, t("inflight.what"), { whole: true });
      if (typed.error) return say(typed.error, false);
      save({ max_in_flight: typed.value });
    });
    const row = element("label", {}, { display: "flex", gap: "6px", alignItems: "center" });
    row.append(input, element("span", { textContent: t("inflight.unit") }));
    root.append(row);
    return (answer) => show(input, answer.settings.max_in_flight);
  });
}

// The spend guard's error names today's spend, the task's cost, the limit and where to change
// it. Frontend 1.5x shows a node's error only as "<node> failed" until "View details" is
// clicked: the guard's own words go in a toast too, so nobody has to dig for them.
function showSpendLimitError(event) {
  const error = event.detail;
  if (!String(error?.exception_type ?? "").endsWith(".SpendLimitReached")) return;
  app.extensionManager?.toast?.add({
    severity: "warn", summary: t("spend.toastSummary"), detail: String(error.exception_message ?? ""), // the guard's words: English, as Python says them
    life: 20000,
  });
}

app.registerExtension({
  name: "CometAPI.Omni.Spending",
  setup() {
    followLocale();
    api.addEventListener("execution_error", showSpendLimitError);
  },
  // Render functions: the frontend shows the panels and never stores a value for them.
  // Listed as Daily limit, Rates, Background collection, Tasks in flight: frontend 1.5x sorts a
  // group by sortOrder (and the group by its highest, with 0 for the key's); 1.27 has no
  // sortOrder and lists a group in reverse order of registration. Names and tooltips in English
  // (the frontend's fallback); other languages come from locales/<lang>/settings.json.
  settings: [
    {
      id: "CometAPI.Omni.Spending.InFlight",
      category: [...CATEGORY, "Tasks in flight"],
      name: en["settings.CometAPI_Omni_Spending_InFlight.name"],
      tooltip: en["settings.CometAPI_Omni_Spending_InFlight.tooltip"],
      defaultValue: "",
      sortOrder: -4,
      type: () => inFlightPanel(),
    },
    {
      id: "CometAPI.Omni.Spending.BackgroundCollect",
      category: [...CATEGORY, "Background collection"],
      name: en["settings.CometAPI_Omni_Spending_BackgroundCollect.name"],
      tooltip: en["settings.CometAPI_Omni_Spending_BackgroundCollect.tooltip"],
      defaultValue: "",
      sortOrder: -3,
      type: () => backgroundPanel(),
    },
    {
      id: "CometAPI.Omni.Spending.Rates",
      category: [...CATEGORY, "Rates"],
      name: en["settings.CometAPI_Omni_Spending_Rates.name"],
      tooltip: en["settings.CometAPI_Omni_Spending_Rates.tooltip"],
      defaultValue: "",
      sortOrder: -2,
      type: () => ratesPanel(),
    },
    {
      id: "CometAPI.Omni.Spending.DailyLimit",
      category: [...CATEGORY, "Daily limit"],
      name: en["settings.CometAPI_Omni_Spending_DailyLimit.name"],
      tooltip: en["settings.CometAPI_Omni_Spending_DailyLimit.tooltip"],
      defaultValue: "",
      sortOrder: -1,
      type: () => dailyLimitPanel(),
    },
  ],
});
