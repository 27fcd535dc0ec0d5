"""A separate process that meets a journal it cannot write: Submit a new intent, then Poll a
finished task by id. Used by test_journal_world.py; configuration comes from the environment.

argv: TASK_ID JOURNAL_PATH. Prints one JSON line with what it got.
"""

import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.load_pack import load_pack  # noqa: E402


async def main(task_id: str, journal: Path) -> dict:
    if os.access(journal if journal.exists() else journal.parent, os.W_OK):
        return {"skip": "this process can still write the journal (root with an inheritable "
                        "CAP_DAC_OVERRIDE?): a read-only journal cannot be shown here"}
    nodes = load_pack().NODE_CLASS_MAPPINGS
    (request,) = await nodes["CometOmniPrompt"]().build(prompt="a new intent", mode="pro", aspect_ratio="16:9",
                                                       duration=5)
    try:
        await nodes["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4")
        refused = None
    except Exception as exc:  # what the user would see on the node
        refused = {"type": type(exc).__name__, "message": str(exc)}
    frames, _, video, _, tid, _ = (await nodes["CometOmniPoll"]().poll(task_id=task_id, unique_id="5"))["result"]
    return {"submit_error": refused, "task_id": tid, "frames": int(frames.shape[0]),
            "path": video.get_stream_source()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], Path(sys.argv[2])))), flush=True)
