// How the page calls the pack's own routes (/cometapi_omni/...). Pure, so Node can test it.
//
// The server refuses a POST or DELETE without Content-Type: application/json (nodes/routes.py):
// a page of another site cannot send that type without a CORS preflight, which the pack never
// grants. So every state-changing call carries it, with a body or not.

/** The fetch() init for `method`, with `body` (any JSON value) when given. */
export function packRequestInit(method, body) {
  const init = { method };
  if (method !== "GET" && method !== "HEAD") init.headers = { "Content-Type": "application/json" };
  if (body !== undefined) init.body = JSON.stringify(body);
  return init;
}
