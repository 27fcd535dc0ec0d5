"""The stored-key run: a ComfyUI without COMETAPI_KEY. Without a key a prompt fails saying how to
set one; the key POSTed to the pack's route /cometapi_omni/key is stored owner-only (answered
masked), tested, and text-to-video runs with it. The key appears nowhere but its file.
"""

from __future__ import annotations

import json
from pathlib import Path

from .common_checks import check_log, check_no_key, check_poll_output, pack_key_file
from .comfy import connect, outcome_text, poll_nodes, template_prompt
from .processes import comfyui
from .report import Report


async def stored_key_run(args, report: Report, work: Path, fake_url: str, key: str) -> None:
    history = ""
    async with comfyui(args, work, "stored_key", fake_url, None) as c:
        report.note(f"stored-key run: ComfyUI at {c.url}, no COMETAPI_KEY in its environment")
        comfy, info = await connect(c)
        prompt, workflow = template_prompt("Kling O1 text to video", info)

        status, body = await comfy.text("GET", "/cometapi_omni/key")
        report.check(status == 200 and json.loads(body).get("set") is False,
                     "stored-key run: no key at first", body)
        run = await comfy.run(prompt, workflow)
        message = json.dumps(run["error"] or {})
        report.check(run["outcome"] == "error" and "COMETAPI_KEY" in message and "Settings" in message,
                     "stored-key run: without a key the prompt fails saying how to set one",
                     (run["error"] or {}).get("exception_message", run["outcome"])[:300])

        status, body = await comfy.text("POST", "/cometapi_omni/key", json={"key": key})
        answer = json.loads(body) if status == 200 else {}
        report.check(status == 200 and answer.get("source") == "store" and answer.get("ends_with") == key[-4:]
                     and key not in body, "stored-key run: POST /cometapi_omni/key stores it, answers masked",
                     body)
        status, body = await comfy.text("POST", "/cometapi_omni/key/test", json={})  # JSON: the routes require it
        report.check(status == 200 and json.loads(body).get("ok") is True and key not in body,
                     "stored-key run: POST /cometapi_omni/key/test accepts it", body)
        key_file = pack_key_file(c.base)
        mode = key_file.stat().st_mode & 0o777 if key_file.exists() else None
        report.check(key_file.exists() and key_file.read_text().strip() == key and mode == 0o600,
                     "stored-key run: key file is owner-only", f"{key_file} mode {oct(mode or 0)}")

        run = await comfy.run(prompt, workflow)
        report.check(run["outcome"] == "success", "stored-key run: text-to-video runs with the stored key",
                     outcome_text(run))
        if run["outcome"] == "success":
            for node_id in poll_nodes(prompt):
                check_poll_output(report, "stored-key run", run, node_id, c.base)
        history = await comfy.history_text()
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "stored-key run", expected=("KeyMissing",))
    check_no_key(report, "stored-key run", key, c.base, {"history": history, "ComfyUI log": log},
                 allowed={pack_key_file(c.base)})

