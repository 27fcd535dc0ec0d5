// Text the extension shows: key status, key test results, prompt help, task ids.
// Pure (no DOM, no ComfyUI) so Node can test every wording.

/** One line for the settings panel, from the server's masked status. Never shows more than 4 chars. */
export function keyStatusText(status) {
  if (!status || typeof status !== "object") return "Key status unknown (is the pack loaded on this server?).";
  const tail = typeof status.ends_with === "string" ? ` ending in …${status.ends_with.slice(-4)}` : "";
  if (status.source === "env") {
    const saved = status.stored ? " A key saved here is ignored while it is set." : "";
    return `Using the COMETAPI_KEY environment variable of the server${tail}.${saved}`;
  }
  if (status.set) return `Key saved on the server${tail}.`;
  return "No key set. Paste your CometAPI key and press Save (or set COMETAPI_KEY before starting ComfyUI).";
}

/** The answer of POST /cometapi_omni/key/test as {text, ok}. */
export function keyTestText(answer) {
  if (!answer || typeof answer !== "object") return { ok: false, text: "The test gave no answer." };
  const ok = answer.ok === true;
  const message = typeof answer.message === "string" && answer.message ? answer.message : (ok ? "The key works." : "The key did not work.");
  return { ok, text: (ok ? "✓ " : "✗ ") + message };
}

/** What a reference is, for a person: "first_frame from Load Image #12". */
export function describeEntry(entry) {
  if (entry.kind === "image") {
    const role = entry.role ?? "role set by a link";
    const from = entry.source ? `from ${entry.source}` : "with no image wired";
    const batch = entry.batch ? " (if that is a batch, one number per image)" : "";
    return `${role} ${from}${batch}`;
  }
  if (entry.kind === "element") {
    const id = entry.elementId === undefined ? "id set by a link" : (String(entry.elementId).trim() || "no id yet");
    return `element ${id} (${entry.node})`;
  }
  const type = entry.referType ?? "refer_type set by a link";
  const sound = entry.keepSound === true ? ", keeps its sound" : "";
  const url = entry.url === undefined ? "url set by a link" : (String(entry.url).trim() || "no url yet");
  return `${type} video ${shorten(url, 60)}${sound} (${entry.node})`;
}

/**
 * The help shown on a CometOmniPrompt node: [{text, level: "info"|"warn"|"error"}].
 * `refs` is a describeRefs result, `check` a checkTokens result for the node's prompt.
 */
export function promptHelpLines(refs, check) {
  const lines = [];
  const entries = [...refs.images, ...refs.elements, ...refs.videos];
  if (entries.length === 0) {
    lines.push({ level: "info", text: "No references wired: text to video. Wire image, element or video refs into refs to use <<<image_1>>> and the like." });
  } else {
    lines.push({ level: "info", text: "Tokens you can use (or @image1, @element1, @video):" });
    let uncertain = false;
    for (const entry of entries) {
      const token = entry.exact === false ? `${entry.token} or later` : entry.token;
      uncertain = uncertain || entry.exact === false;
      lines.push({ level: "info", text: `${token} = ${describeEntry(entry)}` });
    }
    if (uncertain) lines.push({ level: "info", text: "Numbers after a batch move up by its size minus one." });
  }
  for (const problem of refs.problems) lines.push({ level: "warn", text: problem });
  const seen = new Set();
  for (const token of check?.tokens ?? []) {
    if (token.status === "ok" || seen.has(token.text)) continue;
    seen.add(token.text);
    const count = { image: refs.images.length, element: refs.elements.length, video: refs.videos.length }[token.kind];
    const wired = count ? `only ${count} ${token.kind}${count > 1 ? "s are" : " is"} wired` : `no ${token.kind} is wired`;
    if (token.status === "maybe") {
      lines.push({ level: "warn", text: `${token.text} points at an image only if the batches upstream are big enough (${count} reference node${count > 1 ? "s" : ""} wired).` });
    } else {
      lines.push({ level: "error", text: `${token.text} points at nothing: ${wired}.` });
    }
  }
  for (const odd of check?.odd ?? []) {
    if (seen.has(odd.text)) continue;
    seen.add(odd.text);
    lines.push({ level: "error", text: `${shorten(odd.text, 40)} is not a token: write <<<image_N>>>, <<<element_N>>> or <<<video_1>>>.` });
  }
  if (check?.tooLong) lines.push({ level: "error", text: `The prompt is ${check.length} characters; the limit is 2500.` });
  return lines;
}

/** The line kept on a Poll node after it ran. */
export function taskIdText(taskId) {
  return taskId ? `Task id: ${taskId}` : "";
}

/** The task id from a Poll node's `executed` ui payload ({"task_id": [id], ...}). */
export function taskIdFromOutput(output) {
  const value = output?.task_id;
  const id = Array.isArray(value) ? value[0] : value;
  return typeof id === "string" || typeof id === "number" ? String(id) : "";
}

function shorten(text, limit) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}
