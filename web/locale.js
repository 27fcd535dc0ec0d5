// The language of the pack's own words (web/lib/i18n.js) follows the frontend's Comfy.Locale
// setting: read at setup, and live when it changes. Every frontend since 1.3 dispatches
// "<setting id>.change" on app.ui.settings for backward compatibility (1.27: settingStore's
// onChange; 1.5x: GraphCanvas forwards settingStore.onSettingChanged), which is how an
// extension hears of a setting it does not own. It registers no extension of its own: the
// pack's extensions call followLocale() in their setup (the first call subscribes).
import { app } from "../../scripts/app.js";
import { language, setLanguage } from "./lib/i18n.js";

const LOCALE_SETTING = "Comfy.Locale";
const listeners = new Set();

/** Call `listener(language)` whenever the language changes; returns a function to stop. */
export function onLanguageChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function follow(locale) {
  const before = language();
  if (setLanguage(locale) === before) return;
  for (const listener of listeners) {
    try {
      listener(language());
    } catch (error) {
      console.warn("[CometAPI Omni] a language listener failed", error);
    }
  }
}

function readLocale() {
  try {
    return app.extensionManager?.setting?.get?.(LOCALE_SETTING) ?? null;
  } catch {
    return null; // a frontend without the setting store: English
  }
}

let subscribed = false;

/** Read Comfy.Locale now and follow its changes from now on (once, whoever calls it first). */
export function followLocale() {
  follow(readLocale());
  if (subscribed || !app.ui?.settings?.addEventListener) return;
  subscribed = true;
  app.ui.settings.addEventListener(`${LOCALE_SETTING}.change`, (event) => follow(event?.detail?.value ?? readLocale()));
}

// At import too: the settings load before extensions do, so texts drawn before setup read right.
follow(readLocale());
