import { test } from "node:test";
import assert from "node:assert/strict";

import { checkTokens, normalizePrompt, scanTokens } from "../lib/tokens.js";

const kinds = (text) => scanTokens(text).tokens.map((t) => `${t.kind}_${t.number}`);

test("finds the three token kinds in order of appearance", () => {
  assert.deepEqual(kinds("<<<video_1>>> then <<<image_2>>> meets <<<element_1>>>"), ["video_1", "image_2", "element_1"]);
  assert.deepEqual(kinds("<<< image_3 >>>"), ["image_3"]);
});

test("shorthands: @image is image 1, @imageN is image N, @video is video 1", () => {
  assert.deepEqual(kinds("@image walks, @image2 waves, @element1 and @video."), ["image_1", "image_2", "element_1", "video_1"]);
  assert.deepEqual(kinds("@video1 @element"), ["video_1", "element_1"]);
  const [token] = scanTokens("see @image2").tokens;
  assert.equal(token.shorthand, true);
  assert.equal(token.text, "@image2");
});

test("shorthands inside words, e-mails and longer words are not tokens", () => {
  assert.deepEqual(kinds("x@images me@image.com a@video @images @imagery @image2x @@image é@image"), []);
  assert.deepEqual(kinds("(@image) @image2, @video."), ["image_1", "image_2", "video_1"]);
});

test("normalizePrompt rewrites shorthands like the server does", () => {
  assert.equal(normalizePrompt("@image and @image3 in @video, mail x@image.com"),
    "<<<image_1>>> and <<<image_3>>> in <<<video_1>>>, mail x@image.com");
  assert.equal(normalizePrompt("@image02"), "<<<image_2>>>");
});

test("odd <<<...>>> that are not tokens are reported", () => {
  const { odd } = scanTokens("<<<img_1>>> <<<image_1>>> <<<Image_1>>> <<<video>>>");
  assert.deepEqual(odd.map((o) => o.text), ["<<<img_1>>>", "<<<Image_1>>>", "<<<video>>>"]);
});

const refs = (images, elements = 0, videos = 0, batchAt = -1) => ({
  images: Array.from({ length: images }, (_, i) => ({ kind: "image", number: i + 1, batch: i === batchAt, exact: batchAt < 0 || i <= batchAt })),
  elements: Array.from({ length: elements }, (_, i) => ({ kind: "element", number: i + 1, exact: true })),
  videos: Array.from({ length: videos }, (_, i) => ({ kind: "video", number: i + 1, exact: true })),
});

test("tokens pointing at nothing are flagged", () => {
  const check = checkTokens("<<<image_1>>> <<<image_2>>> @element1 @video <<<image_0>>>", refs(1));
  assert.deepEqual(check.tokens.map((t) => [t.text, t.status]), [
    ["<<<image_1>>>", "ok"], ["<<<image_2>>>", "missing"], ["@element1", "missing"], ["@video", "missing"], ["<<<image_0>>>", "missing"],
  ]);
  assert.equal(check.tokens[0].target.number, 1);
});

test("beyond an upstream batch of unknown size an image token is only 'maybe'", () => {
  const check = checkTokens("<<<image_1>>> <<<image_3>>> <<<image_2>>> <<<element_2>>>", refs(2, 1, 0, 0));
  assert.deepEqual(check.tokens.map((t) => t.status), ["ok", "maybe", "ok", "missing"]);
  assert.equal(check.tokens[0].target.number, 1);
  assert.equal(check.tokens[2].target, null); // image_2 exists but which image it is depends on the batch
});

test("prompt length is measured after shorthands are expanded", () => {
  const text = "a".repeat(2494) + " @image"; // 2501 characters as typed
  const check = checkTokens(text, refs(1));
  assert.equal(check.length, 2495 + "<<<image_1>>>".length);
  assert.equal(check.tooLong, true);
  assert.equal(checkTokens("a".repeat(2500), refs(0)).tooLong, false);
});

test("normalizePrompt gives every token its exact form", () => {
  assert.equal(normalizePrompt("<<< image_01 >>> and <<<video_1 >>>"), "<<<image_1>>> and <<<video_1>>>");
});
