// Settings › CometAPI: type the key once; the server stores it (owner-only file) and only
// ever answers with a masked status. The "setting" is a custom-rendered panel whose
// setter is never called, so nothing reaches comfy.settings.json (readable via GET /settings).
import { app } from "../../scripts/app.js";
import { keyStatusText, keyTestText } from "./lib/format.js";
import { packCall as call } from "./pack_api.js";
import en from "./i18n/en.js";
import { t } from "./lib/i18n.js";
import "./locale.js"; // the language the panel is drawn in

const KEY_ROUTE = "/cometapi_omni/key";

function element(tag, props = {}, style = {}) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.style, style);
  return node;
}

function keyPanel() {
  const root = element("div", {}, { display: "flex", flexDirection: "column", gap: "6px", minWidth: "22rem" });
  const status = element("div", { textContent: t("key.checking") });
  const input = element("input", {
    type: "password",
    autocomplete: "new-password", // keeps browsers' password managers out of it
    spellcheck: false,
    placeholder: t("key.placeholder"),
  }, { flex: "1", padding: "4px 6px" });
  input.setAttribute("aria-label", t("key.inputLabel"));
  const save = element("button", { textContent: t("key.save"), type: "button" });
  const test = element("button", { textContent: t("key.test"), type: "button" });
  const remove = element("button", { textContent: t("key.remove"), type: "button" });
  const message = element("div", {}, { whiteSpace: "pre-wrap" });
  const row = element("div", {}, { display: "flex", gap: "6px", alignItems: "center" });
  row.append(input, save);
  const actions = element("div", {}, { display: "flex", gap: "6px" });
  actions.append(test, remove);
  root.append(status, row, actions, message);

  const show = (data) => {
    status.textContent = keyStatusText(data);
    remove.disabled = !data?.stored;
  };
  const say = (text, ok = true) => {
    message.textContent = text;
    message.style.color = ok ? "" : "var(--error-text, #f66)";
  };
  const busy = async (button, work) => {
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      say(String(error?.message ?? error), false);
    } finally {
      button.disabled = false;
    }
  };

  save.addEventListener("click", () => busy(save, async () => {
    const key = input.value;
    input.value = ""; // the key leaves the page with this request and is not kept in the DOM
    show(await call("POST", KEY_ROUTE, { key }));
    say(t("key.saved"));
  }));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") save.click();
  });
  test.addEventListener("click", () => busy(test, async () => {
    say(t("key.testing"));
    const answer = await call("POST", `${KEY_ROUTE}/test`);
    if (answer?.status) show(answer.status);
    const { ok, text } = keyTestText(answer);
    say(text, ok);
  }));
  remove.addEventListener("click", () => busy(remove, async () => {
    show(await call("DELETE", KEY_ROUTE));
    say(t("key.removed"));
  }));

  call("GET", KEY_ROUTE).then(show, (error) => {
    status.textContent = keyStatusText(null);
    say(String(error?.message ?? error), false);
  });
  return root;
}

app.registerExtension({
  name: "CometAPI.Omni.KeySetup",
  settings: [
    {
      id: "CometAPI.Omni.Key",
      // English here (the frontend's fallback); other languages come from locales/<lang>/settings.json.
      category: ["CometAPI", "Kling Omni Video", "API key"],
      name: en["settings.CometAPI_Omni_Key.name"],
      tooltip: en["settings.CometAPI_Omni_Key.tooltip"],
      defaultValue: "",
      // A render function: the frontend shows our panel and never stores a value for it.
      type: () => keyPanel(),
    },
  ],
});
