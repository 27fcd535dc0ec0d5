"""A separate process running Prompt → Submit → Poll, as a ComfyUI that can be killed.

Used by test_billing_faults.py: configuration comes from the environment (COMETAPI_*);
prints one JSON line with what it got.
"""

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.load_pack import load_pack  # noqa: E402


async def main(prompt: str, seed: int) -> dict:
    nodes = load_pack().NODE_CLASS_MAPPINGS
    (request,) = await nodes["CometOmniPrompt"]().build(prompt=prompt, mode="pro", aspect_ratio="16:9", duration=5)
    (task,), (task_id,) = (await nodes["CometOmniSubmit"]().submit(request=request, seed=seed, unique_id="4"))["result"]
    print(json.dumps({"submitted": task_id}), flush=True)
    frames, audio, video, fps, tid, url = (await nodes["CometOmniPoll"]().poll(task=task, unique_id="5"))["result"]
    return {"task_id": tid, "frames": int(frames.shape[0]), "path": video.get_stream_source()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))), flush=True)
