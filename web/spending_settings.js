// Settings › CometAPI › Spending: the daily limit (with today's spend), the rates behind every
// estimate, background collection, tasks in flight. They live on the server (settings.json
// beside the key store: the spend guard runs there, for browserless runs too), so each row is
// a render-function setting whose frontend value is never set; every change is POSTed to
// /cometapi_omni/settings and the server's answer (or its 400 text) is shown.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { RATE_FIELDS, RATE_GROUPS, numberFromInput, rateLabel, ratesSourceText, todayText } from "./lib/spending.js";
import { loadSettings, onSettings, saveSettings } from "./pack_api.js";

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
  const save = async (changes, done = "Saved.") => {
    say("Saving…");
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
    const input = numberInput("Daily limit in USD", { min: 0, step: 0.5 }, (text) => {
      const typed = numberFromInput(text, "daily limit");
      if (typed.error) return say(typed.error, false);
      save({ daily_limit_usd: typed.value }, typed.value > 0 ? "Saved: Submits stop before crossing it." : "Saved: no limit.");
    });
    const row = element("label", {}, { display: "flex", gap: "6px", alignItems: "center" });
    row.append(input, element("span", { textContent: "USD a day (0 = no limit)" }));
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
        const input = numberInput(`Rate for ${name}, ${field.unit}`, { min: 0, step: 0.001, width: "6rem" }, (text) => {
          const typed = numberFromInput(text, `rate for ${name}`);
          if (typed.error) return say(typed.error, false);
          save({ rates: { [field.name]: typed.value } }, `Saved: ${name} is ${typed.value} ${field.unit}.`);
        });
        inputs[field.name] = input;
        table.append(element("span", { textContent: field.label }, { paddingLeft: "8px" }), input,
          element("span", { textContent: field.unit }, { color: MUTED_COLOR }));
      }
    }
    const source = element("div", {}, { color: MUTED_COLOR, fontSize: "0.9em" });
    const reset = element("button", { type: "button", textContent: "Reset to the shipped rates" }, { alignSelf: "flex-start" });
    let shipped = null;
    reset.addEventListener("click", async () => {
      reset.disabled = true;
      await save({ rates: shipped }, "The shipped rates are back.");
      reset.disabled = false;
    });
    root.append(table, source, reset);
    return (answer) => {
      // A rate this server does not send (an older server: no v3 names) stays empty, not "undefined".
      for (const field of RATE_FIELDS) show(inputs[field.name], answer.settings.rates[field.name] ?? "");
      shipped = answer.defaults?.rates ?? null;
      source.textContent = `${ratesSourceText(answer)} Every USD amount the pack shows is an estimate at the rates above.`;
      reset.disabled = !shipped;
    };
  });
}

function backgroundPanel() {
  return panel((root, { save }) => {
    const box = labelled(element("input", { type: "checkbox" }), "Collect finished tasks in the background");
    box.addEventListener("change", () => save({ background_collect: box.checked },
      box.checked ? "On: finished tasks nobody waited for are downloaded." : "Off: no new task is picked up."));
    const row = element("label", {}, { display: "flex", gap: "6px", alignItems: "center" });
    row.append(box, element("span", { textContent: "Download each finished task once, into the output folder" }));
    root.append(row);
    return (answer) => {
      box.checked = Boolean(answer.settings.background_collect);
    };
  });
}

function inFlightPanel() {
  return panel((root, { say, save }) => {
    const input = numberInput("Tasks in flight at once", { min: 0, max: 64, step: 1, width: "5rem" }, (text) => {
      const typed = numberFromInput(text, "tasks in flight", { whole: true });
      if (typed.error) return say(typed.error, false);
      save({ max_in_flight: typed.value });
    });
    const row = element("label", {}, { display: "flex", gap: "6px", alignItems: "center" });
    row.append(input, element("span", { textContent: "tasks (0 = learn it from the account)" }));
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
    severity: "warn", summary: "Daily limit: nothing was sent to CometAPI", detail: String(error.exception_message ?? ""),
    life: 20000,
  });
}

app.registerExtension({
  name: "CometAPI.Omni.Spending",
  setup() {
    api.addEventListener("execution_error", showSpendLimitError);
  },
  // Render functions: the frontend shows the panels and never stores a value for them.
  // Listed as Daily limit, Rates, Background collection, Tasks in flight: frontend 1.5x sorts a
  // group by sortOrder (and the group by its highest, with 0 for the key's); 1.27 has no
  // sortOrder and lists a group in reverse order of registration.
  settings: [
    {
      id: "CometAPI.Omni.Spending.InFlight",
      category: [...CATEGORY, "Tasks in flight"],
      name: "Tasks in flight",
      tooltip: "How many tasks your account may run at once. Submit waits for a free slot instead of being refused.",
      defaultValue: "",
      sortOrder: -4,
      type: () => inFlightPanel(),
    },
    {
      id: "CometAPI.Omni.Spending.BackgroundCollect",
      category: [...CATEGORY, "Background collection"],
      name: "Background collection",
      tooltip: "While ComfyUI runs, tasks nobody waits for (a Poll cancelled or timed out, a Submit without Poll, "
        + "a restart) are downloaded once their video is ready.",
      defaultValue: "",
      sortOrder: -3,
      type: () => backgroundPanel(),
    },
    {
      id: "CometAPI.Omni.Spending.Rates",
      category: [...CATEGORY, "Rates"],
      name: "Rates (USD estimates)",
      tooltip: "What the prices on Submit nodes, the Tasks sidebar and the daily limit count with, per model.",
      defaultValue: "",
      sortOrder: -2,
      type: () => ratesPanel(),
    },
    {
      id: "CometAPI.Omni.Spending.DailyLimit",
      category: [...CATEGORY, "Daily limit"],
      name: "Daily limit",
      tooltip: "A Submit that would take today's spend past it stops before anything is sent. Counted at your "
        + "rates (the actual charge where CometAPI reported one); today is your local day.",
      defaultValue: "",
      sortOrder: -1,
      type: () => dailyLimitPanel(),
    },
  ],
});
