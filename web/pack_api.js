// The page's side of the pack's routes (/cometapi_omni/...): one way to call them, and the
// pack's settings (GET/POST /cometapi_omni/settings) shared by the Submit price, Settings ›
// CometAPI › Spending and the Tasks sidebar. ComfyUI imports this file as an extension too;
// it registers nothing.
import { api } from "../../scripts/api.js";
import { packRequestInit } from "./lib/pack_request.js";
import { makeRates } from "./lib/pricing.js";
import { t } from "./lib/i18n.js";

const SETTINGS_ROUTE = "/cometapi_omni/settings";

/** Call a route of the pack; resolves to its JSON answer, rejects with the server's `error` text. */
export async function packCall(method, path, body) {
  const response = await api.fetchApi(path, packRequestInit(method, body));
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  // The route's own error text is Python's, in English; only a missing one is ours.
  if (!response.ok) throw new Error(data?.error ?? t("api.httpError", { status: response.status }));
  return data;
}

const listeners = new Set();
let current = null; // the last answer of the settings route
let asking = null;

/** The last settings answer ({settings, defaults, rates_source, today}), or null before the first. */
export function currentSettings() {
  return current;
}

/** The rates the prices use: the user's, else the shipped table (also when the route fails). */
export function currentRates() {
  return makeRates(current?.settings?.rates);
}

/** Ask the server again (one request at a time); listeners hear the answer. */
export function loadSettings() {
  asking ??= packCall("GET", SETTINGS_ROUTE).then(settled, (error) => {
    asking = null;
    throw error;
  });
  return asking;
}

/** POST a change (any subset of the settings); rejects with the server's 400 text, nothing saved. */
export async function saveSettings(changes) {
  return settled(await packCall("POST", SETTINGS_ROUTE, changes));
}

/** Call `listener(answer)` whenever the settings are read or saved; returns a function to stop. */
export function onSettings(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function settled(answer) {
  current = answer;
  asking = null;
  for (const listener of listeners) {
    try {
      listener(answer);
    } catch (error) {
      console.warn("[CometAPI Omni] a settings listener failed", error);
    }
  }
  return answer;
}
