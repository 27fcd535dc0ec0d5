// A tiny stand-in for litegraph's LGraph, for the tests of web/lib: nodes with widgets, inputs
// and a mode; links in a Map. (Not a test file: node --test runs only *.test.mjs.)

export function makeGraph() {
  const nodes = [];
  const links = new Map();
  let nextLink = 1;
  const byId = (id) => nodes.find((n) => n.id === id);
  return {
    nodes,
    links,
    getLink: (id) => links.get(id),
    node: byId,
    add(id, type, { widgets = {}, inputs = [], mode = 0, title = "" } = {}) {
      const node = {
        id, type, comfyClass: type, mode, title,
        widgets: Object.entries(widgets).map(([name, value]) => ({ name, value })),
        inputs: inputs.map((name) => ({ name, link: null })),
      };
      nodes.push(node);
      return node;
    },
    connect(fromId, toId, inputName, slot = 0) {
      const target = byId(toId);
      let input = target.inputs.find((i) => i.name === inputName);
      if (!input) target.inputs.push(input = { name: inputName, link: null });
      const id = nextLink++;
      links.set(id, { id, origin_id: fromId, origin_slot: slot, target_id: toId });
      input.link = id;
    },
    set(id, name, value) {
      byId(id).widgets.find((w) => w.name === name).value = value;
    },
  };
}

export const PROMPT_INPUTS = ["refs", "shots", "prompt", "mode", "aspect_ratio", "duration", "model", "sound", "auto_shots"];

/** A CometOmniPrompt as this version makes it (all seven widgets). */
export function addPrompt(g, id, { prompt = "a kite", mode = "pro", duration = 5, model = "kling-v3-omni", sound = false,
  autoShots = false, title = "Prompt" } = {}) {
  return g.add(id, "CometOmniPrompt", {
    title, inputs: PROMPT_INPUTS,
    widgets: { prompt, mode, aspect_ratio: "16:9", duration, model, sound, auto_shots: autoShots },
  });
}

/** A chain of CometOmniShot nodes (ids from `firstId`), shot 1 furthest upstream, into Prompt `promptId`. */
export function addShots(g, promptId, shots, firstId = 100) {
  shots.forEach(([prompt, duration], index) => {
    const id = firstId + index;
    g.add(id, "CometOmniShot", { title: "Shot", widgets: { prompt, duration }, inputs: ["shots", "prompt", "duration"] });
    if (index > 0) g.connect(id - 1, id, "shots");
  });
  g.connect(firstId + shots.length - 1, promptId, "shots");
}

export function addSubmit(g, id, { variations = 1, mode = 0 } = {}) {
  return g.add(id, "CometOmniSubmit", { widgets: { seed: 0, variations, timeout_minutes: 30 }, inputs: ["request", "variations"], mode });
}

export function addVideo(g, id, referType = "feature") {
  return g.add(id, "CometOmniVideoRef", { title: "Video", inputs: ["refs", "refer_type"],
    widgets: { video_url: "https://example.com/a.mp4", refer_type: referType, keep_original_sound: true } });
}

export function addImage(g, id, role, source) {
  const node = g.add(id, "CometOmniImageRef", { title: "Image", widgets: { role }, inputs: ["image", "refs", "role"] });
  if (source !== undefined) g.connect(source, id, "image");
  return node;
}
