// Prompt tokens: <<<image_N>>>, <<<element_N>>>, <<<video_N>>> and the Kling-app
// shorthands @image (= 1), @image2, @element1, @video. Mirrors kling_omni/rules.py
// (TOKEN, SHORTHAND, ODD_TOKEN) so the canvas flags exactly what the server refuses.
// Pure: no ComfyUI import, so Node's test runner loads it too.

export const MAX_PROMPT_CHARS = 2500;

const TOKEN = /<<<\s*(image|element|video)_(\d+)\s*>>>/g;
// Python's \w is Unicode-aware; [\p{L}\p{N}_] is its JavaScript spelling.
const SHORTHAND = /(?<![\p{L}\p{N}_@.])@(image|element|video)(\d*)(?![\p{L}\p{N}_])/gu;
const ODD_TOKEN = /<<<[^<>]*>>>/g;
const EXACT_TOKEN = /^<<<\s*(image|element|video)_(\d+)\s*>>>$/;

/** The prompt as the server will send it: shorthands rewritten, every token in its exact <<<kind_N>>> form. */
export function normalizePrompt(text) {
  return String(text ?? "")
    .replace(SHORTHAND, (_, kind, digits) => `<<<${kind}_${Number(digits || 1)}>>>`)
    .replace(TOKEN, (_, kind, digits) => `<<<${kind}_${Number(digits)}>>>`);
}

/**
 * Every reference in the prompt, in order of appearance:
 * [{kind, number, text, index, shorthand}], plus `odd`: [{text, index}] for things shaped
 * like <<<...>>> that are not one of the three kinds (the server refuses those).
 */
export function scanTokens(text) {
  const source = String(text ?? "");
  const found = [];
  for (const m of source.matchAll(TOKEN)) {
    found.push({ kind: m[1], number: Number(m[2]), text: m[0], index: m.index, shorthand: false });
  }
  for (const m of source.matchAll(SHORTHAND)) {
    found.push({ kind: m[1], number: Number(m[2] || 1), text: m[0], index: m.index, shorthand: true });
  }
  found.sort((a, b) => a.index - b.index);
  const odd = [];
  for (const m of source.matchAll(ODD_TOKEN)) {
    if (!EXACT_TOKEN.test(m[0])) odd.push({ text: m[0], index: m.index });
  }
  return { tokens: found, odd };
}

/**
 * Check the prompt's tokens against what is wired (a `describeRefs` result).
 * Returns {tokens: [{...token, status: "ok"|"missing"|"maybe", target}], odd, tooLong, length}.
 * "maybe": an image number beyond the count when an upstream batch has an unknown size.
 */
export function checkTokens(text, refs) {
  const { tokens, odd } = scanTokens(text);
  const lists = { image: refs?.images ?? [], element: refs?.elements ?? [], video: refs?.videos ?? [] };
  const open = { image: lists.image.some((e) => e.batch), element: false, video: false };
  const checked = tokens.map((token) => {
    const list = lists[token.kind];
    if (token.number >= 1 && token.number <= list.length) {
      const target = list[token.number - 1];
      return { ...token, status: "ok", target: target.exact === false ? null : target };
    }
    const status = token.number >= 1 && open[token.kind] ? "maybe" : "missing";
    return { ...token, status, target: null };
  });
  const length = normalizePrompt(text).length;
  return { tokens: checked, odd, length, tooLong: length > MAX_PROMPT_CHARS };
}
