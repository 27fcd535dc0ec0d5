// Text the extension shows: key status, key test results, prompt help, task ids, in the user's
// language (lib/i18n.js). Pure (no DOM, no ComfyUI) so Node can test every wording.

import { t, tn } from "./i18n.js";

/** One line for the settings panel, from the server's masked status. Never shows more than 4 chars. */
export function keyStatusText(status) {
  if (!status || typeof status !== "object") return t("key.status.unknown");
  const tail = typeof status.ends_with === "string" ? t("key.status.endingIn", { last4: status.ends_with.slice(-4) }) : "";
  if (status.source === "env") {
    const saved = status.stored ? t("key.status.storedIgnored") : "";
    return t("key.status.env", { tail }) + saved;
  }
  if (status.set) return t("key.status.stored", { tail });
  return t("key.status.none");
}

/** The answer of POST /cometapi_omni/key/test as {text, ok}. */
export function keyTestText(answer) {
  if (!answer || typeof answer !== "object") return { ok: false, text: t("key.test.noAnswer") };
  const ok = answer.ok === true;
  // The server's own message (English, as Python says it) when it gave one.
  const message = typeof answer.message === "string" && answer.message ? answer.message : t(ok ? "key.test.works" : "key.test.failed");
  return { ok, text: (ok ? "✓ " : "✗ ") + message };
}

/** What a reference is, for a person: "first_frame from Load Image #12". */
export function describeEntry(entry) {
  if (entry.kind === "image") {
    const role = entry.role ?? t("refs.roleLinked");
    const from = entry.source ? t("refs.from", { source: entry.source }) : t("refs.noImage");
    const batch = entry.batch ? t("refs.batch") : "";
    return `${role} ${from}${batch}`;
  }
  if (entry.kind === "element") {
    const id = entry.elementId === undefined ? t("refs.idLinked") : (String(entry.elementId).trim() || t("refs.noId"));
    return t("refs.element", { id, node: entry.node });
  }
  const type = entry.referType ?? t("refs.referTypeLinked");
  const sound = entry.keepSound === true ? t("refs.keepsSound") : "";
  const url = entry.url === undefined ? t("refs.urlLinked") : (String(entry.url).trim() || t("refs.noUrl"));
  return t("refs.video", { type, url: shorten(url, 60), sound, node: entry.node });
}

/**
 * The help shown on a CometOmniPrompt node: [{text, level: "info"|"warn"|"error"}].
 * `refs` is a describeRefs result, `check` a checkTokens result for the node's prompt.
 */
export function promptHelpLines(refs, check) {
  const lines = [];
  const entries = [...refs.images, ...refs.elements, ...refs.videos];
  if (entries.length === 0) {
    lines.push({ level: "info", text: t("help.noRefs") });
  } else {
    lines.push({ level: "info", text: t("help.tokens") });
    let uncertain = false;
    for (const entry of entries) {
      const token = entry.exact === false ? t("help.orLater", { token: entry.token }) : entry.token;
      uncertain = uncertain || entry.exact === false;
      lines.push({ level: "info", text: `${token} = ${describeEntry(entry)}` });
    }
    if (uncertain) lines.push({ level: "info", text: t("help.afterBatch") });
  }
  for (const problem of refs.problems) lines.push({ level: "warn", text: problem });
  const seen = new Set();
  for (const token of check?.tokens ?? []) {
    if (token.status === "ok" || seen.has(token.text)) continue;
    seen.add(token.text);
    const count = { image: refs.images.length, element: refs.elements.length, video: refs.videos.length }[token.kind];
    if (token.status === "maybe") {
      lines.push({ level: "warn", text: tn("help.maybe", count, { token: token.text }) });
    } else {
      lines.push({ level: "error", text: t("help.pointsAtNothing", { token: token.text, wired: wiredText(token.kind, count) }) });
    }
  }
  for (const odd of check?.odd ?? []) {
    if (seen.has(odd.text)) continue;
    seen.add(odd.text);
    lines.push({ level: "error", text: t("help.notAToken", { text: shorten(odd.text, 40) }) });
  }
  if (check?.tooLong) lines.push({ level: "error", text: t("help.tooLong", { length: check.length }) });
  return lines;
}

/** The line kept on a Poll node after it ran. */
export function taskIdText(taskId) {
  return taskId ? t("poll.taskId", { id: taskId }) : "";
}

/** The task id from a Poll node's `executed` ui payload ({"task_id": [id], ...}). */
export function taskIdFromOutput(output) {
  const value = output?.task_id;
  const id = Array.isArray(value) ? value[0] : value;
  return typeof id === "string" || typeof id === "number" ? String(id) : "";
}

/** "only 2 images are wired", "no video is wired": what a token's kind has wired. */
export function wiredText(kind, count) {
  const what = t(`kind.${kind}`);
  return count ? tn("help.onlyWired", count, { kind: what }) : t("help.noneWired", { kind: what });
}

// Characters drawn twice as wide as a Latin letter: CJK ideographs and punctuation, kana, Hangul,
// full-width forms (Unicode's East Asian Wide and Fullwidth, in the ranges the pack's languages use).
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/u;

/** How many columns a text takes, a wide character counting two: what decides where it wraps. */
export function textColumns(text) {
  let columns = 0;
  for (const character of String(text)) columns += WIDE.test(character) ? 2 : 1;
  return columns;
}

function shorten(text, limit) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}
