import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";

import { BEFORE_MODELS, valuesForSavedPrompt } from "../lib/saved_prompt.js";

// The Prompt's saved widgets in the order the frontend makes them from nodes/prompt.py's
// INPUT_TYPES (required, then optional widgets); the help box the pack adds is never saved.
const WIDGETS = ["prompt", "mode", "aspect_ratio", "duration", "model", "sound", "auto_shots"];
const repo = (path) => new URL(`../../${path}`, import.meta.url);
const workflow = (path) => JSON.parse(readFileSync(repo(path), "utf8"));

/** Every CometOmniPrompt of a UI-format workflow, in the root graph and in subgraph definitions. */
function prompts(data) {
  const inner = (data.definitions?.subgraphs ?? []).flatMap((s) => s.nodes ?? []);
  return [...data.nodes, ...inner].filter((n) => n.type === "CometOmniPrompt");
}

test("a workflow saved by the previous version (4 values) runs its Prompt as O1, no sound, no auto shots", () => {
  for (const name of ["saved_before_models_text_to_video.json", "saved_before_models_image_references.json"]) {
    const found = prompts(workflow(`tests/workflows/${name}`));
    assert.ok(found.length >= 1, name);
    for (const node of found) {
      assert.equal(node.widgets_values.length, 4, name);
      assert.deepEqual(valuesForSavedPrompt(node, WIDGETS),
        { model: "kling-video-o1", sound: false, auto_shots: false }, name);
    }
  }
  assert.ok(Object.isFrozen(BEFORE_MODELS));
});

test("the pack's templates name their model: each loads as saved (O1 ones on O1, v3 ones on v3)", () => {
  const names = readdirSync(repo("example_workflows")).filter((f) => f.endsWith(".json"));
  const models = new Set();
  for (const name of names) {
    for (const node of prompts(workflow(`example_workflows/${name}`))) {
      assert.equal(valuesForSavedPrompt(node, WIDGETS), null, name);
      models.add(node.widgets_values[WIDGETS.indexOf("model")]);
    }
  }
  assert.deepEqual([...models].sort(), ["kling-v3-omni", "kling-video-o1"]);
});

test("a Prompt inside a subgraph definition is decided the same way", () => {
  const old = workflow("tests/workflows/saved_before_models_text_to_video.json");
  const prompt = prompts(old)[0];
  const data = { nodes: [], definitions: { subgraphs: [{ id: "s1", nodes: [prompt] }] } };
  assert.deepEqual(valuesForSavedPrompt(prompts(data)[0], WIDGETS), BEFORE_MODELS);
});

test("a saved model is kept, also with sound and auto shots on; a hole or null where it goes is no model", () => {
  const base = ["a fox", "pro", "16:9", 12];
  assert.equal(valuesForSavedPrompt({ widgets_values: [...base, "kling-v3-omni", true, false] }, WIDGETS), null);
  assert.equal(valuesForSavedPrompt({ widgets_values: [...base, "kling-video-o1", false, false] }, WIDGETS), null);
  // An unknown model is still the user's choice: the server names the models it takes.
  assert.equal(valuesForSavedPrompt({ widgets_values: [...base, "kling-v4-omni", false, false] }, WIDGETS), null);
  assert.deepEqual(valuesForSavedPrompt({ widgets_values: [...base, null] }, WIDGETS), BEFORE_MODELS);
  assert.deepEqual(valuesForSavedPrompt({ widgets_values: JSON.parse(JSON.stringify([...base, undefined])) }, WIDGETS), BEFORE_MODELS);
  assert.deepEqual(valuesForSavedPrompt({ widgets_values: [...base, ""] }, WIDGETS), BEFORE_MODELS);
});

test("values saved by name (widgets_values_named, newer frontends) decide first", () => {
  const base = ["a fox", "pro", "16:9", 5];
  const named = { prompt: "a fox", mode: "pro", aspect_ratio: "16:9", duration: 5 };
  assert.deepEqual(valuesForSavedPrompt({ widgets_values: base, widgets_values_named: named }, WIDGETS), BEFORE_MODELS);
  assert.equal(valuesForSavedPrompt({ widgets_values: base, widgets_values_named: { ...named, model: "kling-v3-omni" } },
    WIDGETS), null);
  assert.equal(valuesForSavedPrompt({ widgets_values: { ...named, model: "kling-v3-omni" } }, WIDGETS), null);
  assert.deepEqual(valuesForSavedPrompt({ widgets_values: named }, WIDGETS), BEFORE_MODELS);
});

test("nothing to decide without saved values, and only for widgets the node has", () => {
  assert.equal(valuesForSavedPrompt(undefined, WIDGETS), null);
  assert.equal(valuesForSavedPrompt({ id: 3, type: "CometOmniPrompt" }, WIDGETS), null);
  const old = { widgets_values: ["a", "pro", "16:9", 5] };
  assert.deepEqual(valuesForSavedPrompt(old, WIDGETS.slice(0, 5)), { model: "kling-video-o1" });
  assert.equal(valuesForSavedPrompt(old, WIDGETS.slice(0, 4)), null);
});
