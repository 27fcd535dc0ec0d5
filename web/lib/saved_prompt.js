// A CometOmniPrompt saved before the model choice existed (the pack's versions before Kling 3.0)
// has 4 saved widget values: [prompt, mode, aspect_ratio, duration]. Loaded as they are, the
// widgets added since (model, sound, auto_shots) would take their defaults, model =
// kling-v3-omni: the workflow would silently become a v3 one that costs differently and is a
// new paid intent. It ran as Kling O1 and keeps doing so (the server does the same for an API
// prompt without a model: nodes/prompt.py). Pure: Node tests it; web/omni_nodes.js applies it.

import { O1 } from "./pricing.js";
import { t } from "./i18n.js";

/** What a Prompt saved before the model choice runs with: exactly what it ran with then. */
export const BEFORE_MODELS = Object.freeze({ model: O1, sound: false, auto_shots: false });

/**
 * The widget values to set on a CometOmniPrompt just configured from its saved form `info`
 * (a serialised node: widgets_values, and widgets_values_named on frontends that write it),
 * or null to leave it as loaded. `widgetNames`: the names of the node's widgets that are saved,
 * in order (the frontend matches widgets_values to them by position).
 *
 * The model counts as saved when the saved values hold a model name at its place, or under its
 * name. Anything else there (nothing, null, a hole) is a Prompt from before the choice: O1, no
 * sound, no auto shots. A model name this version does not know is still the user's choice: it
 * stays, and the server says it is not one of the models it takes.
 */
export function valuesForSavedPrompt(info, widgetNames) {
  if (!info || typeof info !== "object") return null;
  const named = info.widgets_values_named;
  const positional = info.widgets_values;
  if (named == null && positional == null) return null; // not a saved Prompt (no values at all)
  if (isPlainObject(named) && isModelName(named.model)) return null;
  if (Array.isArray(positional)) {
    const at = widgetNames.indexOf("model");
    if (at >= 0 && isModelName(positional[at])) return null;
  } else if (isPlainObject(positional) && isModelName(positional.model)) {
    return null; // values saved by name
  }
  const values = {};
  for (const [name, value] of Object.entries(BEFORE_MODELS)) {
    if (widgetNames.includes(name)) values[name] = value;
  }
  return Object.keys(values).length ? values : null;
}

function isModelName(value) {
  return typeof value === "string" && value.trim() !== "";
}

function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The line the Prompt node shows while a Prompt loaded from before the choice is still on O1. */
export function keptOnO1Note() {
  return t("prompt.keptOnO1");
}
