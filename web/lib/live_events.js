// What a live `cometapi_omni.task` event asks of the Tasks sidebar's list. The event carries no
// content (any page connected to ComfyUI's /ws receives it): only {task_id, as_of}. The sidebar
// reads the row itself through the pack's guarded GET /cometapi_omni/tasks/{task_id}. Pure: Node
// tests it.

/**
 * "row": read that task's row; "page": read the first page again (an intent without a task id
 * changed); null: nothing (the list is not loaded yet and its first page brings it, or the row
 * here was read at or after the change, as_of being server read stamps).
 */
export function eventNeed(list, detail) {
  if (!list?.loaded || !detail || typeof detail !== "object") return null;
  if (detail.task_id == null) return "page";
  const known = list.rows.find((row) => row.task_id === String(detail.task_id));
  if (known && typeof detail.as_of === "number" && (known.as_of ?? -Infinity) >= detail.as_of) return null;
  return "row";
}
