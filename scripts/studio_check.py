"""Two real ComfyUI servers on one PostgreSQL and one fake CometAPI account: issue 18's "Done when", checked.

    .venv/bin/python scripts/studio_check.py --comfyui /path/to/ComfyUI --python /path/to/comfy/venv/bin/python

What it starts (each stopped on exit; every wait is bounded): a throwaway PostgreSQL
(scripts/throwaway_postgres.py), `python -m fake_cometapi` with an account limit of 3 tasks in flight,
and two ComfyUIs, "studio-a" and "studio-b", each with its own base directory (a copy of the pack),
both with COMETAPI_OMNI_DATABASE_URL naming that database. ComfyUI's Python gets psycopg from a
folder of its own (pip install --target, once), as a user would install it. Then:

1. each start-up log names the shared database (without its password), and no log holds the password;
2. both queue 4 variations at the same moment: 8 tasks, never more than 3 in flight (the fake's state,
   sampled), the account's refusals counted, no failed node, 8 whole videos between the two output
   folders;
3. studio-a's prompt queued on studio-b creates nothing (studio-b gets the videos);
4. each sidebar (GET /cometapi_omni/tasks) lists the other's tasks with its machine's name, and a task
   made on studio-b is announced live on studio-a's /ws within about a second;
5. a daily limit set on studio-a stops studio-b's next Submit before any creation request;
6. studio-a is killed while a task of its own runs: studio-b's background collector collects its video.

With --max-in-flight 3 the shared setting is saved on studio-a first, and no creation is refused;
without it (the default, 0) the limit is learned from the account's first refusals, shared.

Exit status 0 when every check passed. Set TMPDIR to keep the work folder (and its logs) out of /tmp;
--keep keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.load_pack import load_pack  # noqa: E402

load_pack()

from kling_omni.verify import check_video  # noqa: E402
from scripts.throwaway_postgres import ThrowawayPostgres  # noqa: E402

KEY = "sk-studio-check-0123456789"
PACK_DIR_NAME = "cometapi-kling-omni"
MACHINES = ("studio-a", "studio-b")
LIMIT = 3
PSYCOPG = "psycopg[binary]==3.3.9"


class Report:
    def __init__(self):
        self.results = []

    def check(self, ok, name: str, detail: str = "") -> bool:
        self.results.append((bool(ok), name, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f" — {detail}" if detail else ""), flush=True)
        return bool(ok)


class Service:
    """A child process in its own session, its output in a log file."""

    def __init__(self, argv, log_path: Path, cwd=None, env=None):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self._log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psycopg_for(python: str, cache: Path) -> str:
    """A folder for PYTHONPATH that gives ComfyUI's Python psycopg ('' when it has it already)."""
    if subprocess.run([python, "-c", "import psycopg"], capture_output=True).returncode == 0:
        return ""
    if not (cache / "psycopg").is_dir():
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--target", str(cache), PSYCOPG], check=True)
    return str(cache)


def base_dir(work: Path, name: str) -> Path:
    base = work / name
    ignore = shutil.ignore_patterns(".git", ".venv", "node_modules", "data", "__pycache__", "*.pyc", ".pytest_cache",
                                    "demo_output", ".work")
    shutil.copytree(REPO, base / "custom_nodes" / PACK_DIR_NAME, ignore=ignore, symlinks=True)
    return base


def prompt_graph(text: str, seed: int, variations: int) -> dict:
    return {
        "1": {"class_type": "CometOmniPrompt", "inputs": {"prompt": text, "mode": "std", "aspect_ratio": "16:9",
                                                           "duration": 5, "model": "kling-video-o1"}},
        "2": {"class_type": "CometOmniSubmit", "inputs": {"request": ["1", 0], "seed": seed,
                                                           "variations": variations, "timeout_minutes": 10}},
        "3": {"class_type": "CometOmniPoll", "inputs": {"task": ["2", 0], "timeout_minutes": 10, "max_frames": 1}},
    }


class Machine:
    def __init__(self, name: str, url: str, base: Path, service: Service):
        self.name, self.url, self.base, self.service = name, url, base, service

    @property
    def videos(self) -> list:
        return sorted((self.base / "output" / "cometapi_omni").glob("kling_*.mp4"))


async def queue(http, machine: Machine, graph: dict) -> str:
    async with http.post(machine.url + "/prompt", json={"prompt": graph, "client_id": f"check-{machine.name}"}) as r:
        body = await r.json()
        if r.status != 200:
            raise RuntimeError(f"{machine.name} refused the prompt: {json.dumps(body)[:1500]}")
        return body["prompt_id"]


async def finished(http, machine: Machine, prompt_id: str, timeout: float = 240) -> dict:
    """The prompt's history entry once it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get(f"{machine.url}/history/{prompt_id}") as r:
            entry = (await r.json()).get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None and \
                entry["status"].get("status_str") in ("success", "error"):
            return entry
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{machine.name}: prompt {prompt_id} did not end within {timeout:.0f} s")


def failure(entry: dict) -> str:
    """What a failed prompt's history says (the node's exception message), or ''."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message', '')}"
    return ""


async def fake_state(http, fake_url: str) -> dict:
    async with http.get(fake_url + "/_fake/state") as r:
        return await r.json()


async def sample_in_flight(http, fake_url: str, stop: asyncio.Event, seen: list) -> None:
    """The most tasks the account has in flight, sampled every 0.1 s from the fake's state."""
    while not stop.is_set():
        state = await fake_state(http, fake_url)
        seen.append(sum(1 for t in state["tasks"] if t["status"] in ("submitted", "processing")))
        await asyncio.sleep(0.1)


async def tasks_of(http, machine: Machine) -> list:
    async with http.get(machine.url + "/cometapi_omni/tasks?limit=200") as r:
        return (await r.json())["tasks"]


async def scenario(args, work: Path, pg: ThrowawayPostgres, report: Report) -> None:
    database = pg.create_database("studio")
    site = psycopg_for(args.python, Path(tempfile.gettempdir()) / "studio-check-psycopg")
    fake = Service([sys.executable, "-m", "fake_cometapi", "--port", "0", "--key", KEY, "--max-in-flight", str(LIMIT),
                    "--submitted-seconds", "1", "--processing-seconds", "3", "--video-seconds", "2", "--fps", "24",
                    "--size", "320x240"], work / "fake.log", cwd=REPO)
    services = [fake]
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r" at (http://\S+)", fake.log())) and time.monotonic() < deadline:
            time.sleep(0.1)
        fake_url = found.group(1)
        machines = []
        for name in MACHINES:
            base = base_dir(work, name)
            port = free_port()
            env = {**os.environ, "COMETAPI_KEY": KEY, "COMETAPI_BASE_URL": fake_url, "COMETAPI_OMNI_DATABASE_URL": database,
                   "COMETAPI_OMNI_MACHINE": name, "COMETAPI_OMNI_POLL_SECONDS": "0.5",
                   "COMETAPI_OMNI_COLLECT_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
            if site:
                env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            service = Service([args.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                               "--disable-auto-launch", "--base-directory", str(base)], work / f"{name}.comfyui.log",
                              cwd=args.comfyui, env=env)
            services.append(service)
            machines.append(Machine(name, f"http://127.0.0.1:{port}", base, service))
        a, b = machines
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            for m in machines:
                deadline = time.monotonic() + 180
                while True:
                    try:
                        async with http.get(m.url + "/system_stats") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline or m.service.proc.poll() is not None:
                        raise RuntimeError(f"{m.name} did not start: {m.service.log()[-3000:]}")
                    await asyncio.sleep(0.5)
            where = f"postgresql://kling@127.0.0.1:{pg.port}/studio"
            for m in machines:
                report.check(f"shared through {where}; this machine is {m.name}" in m.service.log(),
                             f"{m.name}: the start-up log names the shared database and the machine", where)

            if args.max_in_flight:  # the shared setting, saved on one machine: the account's pace for both
                async with http.post(a.url + "/cometapi_omni/settings",
                                     json={"max_in_flight": args.max_in_flight}) as r:
                    report.check(r.status == 200, f"tasks in flight set to {args.max_in_flight} on {a.name}")

            # 2. both queue 4 variations at the same moment
            stop, seen = asyncio.Event(), []
            sampler = asyncio.create_task(sample_in_flight(http, fake_url, stop, seen))
            started = time.monotonic()
            ids = await asyncio.gather(queue(http, a, prompt_graph("a fox runs through snow", 1, 4)),
                                       queue(http, b, prompt_graph("a heron takes off from a lake", 1, 4)))
            entries = await asyncio.gather(finished(http, a, ids[0]), finished(http, b, ids[1]))
            stop.set()
            await sampler
            state = await fake_state(http, fake_url)
            report.check(all(e["status"]["status_str"] == "success" for e in entries), "no failed node",
                         "; ".join(filter(None, (failure(e) for e in entries))) or f"both ran in "
                         f"{time.monotonic() - started:.1f} s")
            report.check(state["created"] == 8, "8 tasks for 2 machines x 4 variations", f"{state['created']} made")
            report.check(max(seen) <= LIMIT, f"never more than {LIMIT} in flight",
                         f"at most {max(seen)} seen in {len(seen)} samples; the account refused "
                         f"{state['refused_creates']} creation(s) with 429 (1303), each making nothing")
            videos = a.videos + b.videos
            whole = []
            for video in videos:
                try:
                    check_video(video)
                    whole.append(video)
                except Exception as exc:
                    print(f"      {video}: {exc}")
            report.check(len(whole) == 8, "8 whole videos between the two output folders",
                         f"{len(a.videos)} on {a.name}, {len(b.videos)} on {b.name}, {len(whole)} whole")

            # 3. studio-a's prompt on studio-b
            before = (await fake_state(http, fake_url))["creation_requests"]
            entry = await finished(http, b, await queue(http, b, prompt_graph("a fox runs through snow", 1, 4)))
            after = await fake_state(http, fake_url)
            report.check(entry["status"]["status_str"] == "success" and after["created"] == 8 and
                         after["creation_requests"] == before,
                         f"{a.name}'s prompt queued on {b.name} creates nothing",
                         f"{after['created']} tasks, {after['creation_requests'] - before} new creation requests; "
                         f"{b.name} now holds {len(b.videos)} videos")

            # 4. each sidebar lists the other's tasks, and live events cross machines
            rows_a, rows_b = await tasks_of(http, a), await tasks_of(http, b)
            report.check({r["machine"] for r in rows_a} == set(MACHINES) and {r["machine"] for r in rows_b} ==
                         set(MACHINES) and len(rows_a) == len(rows_b) == 8,
                         "each sidebar lists both machines' tasks with the machine's name",
                         f"{a.name}: {sorted((r['machine'], r['state']) for r in rows_a)[:2]}…, {len(rows_b)} on "
                         f"{b.name}")
            async with http.ws_connect(f"{a.url}/ws?clientId=studio-check-a") as ws:
                sent = time.time()
                new_prompt = await queue(http, b, prompt_graph("a lantern on a pier at dusk", 7, 1))
                heard = None
                deadline = time.monotonic() + 30
                while heard is None and time.monotonic() < deadline:
                    try:
                        message = await ws.receive(timeout=1)
                    except asyncio.TimeoutError:
                        continue
                    if message.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(message.data)
                        if data.get("type") == "cometapi_omni.task" and data["data"].get("task_id"):
                            arrived = time.time()  # the event names the task only: its row is read as the sidebar does
                            async with http.get(f"{a.url}/cometapi_omni/tasks/{data['data']['task_id']}") as r:
                                row = (await r.json()).get("task") or {}
                            if row.get("machine") == b.name and "a lantern" in row.get("prompt", ""):
                                heard, made = arrived, row["updated_at"]
                entry = await finished(http, b, new_prompt)
            report.check(heard is not None and heard - made < 1.5, f"a task made on {b.name} is announced live on "
                         f"{a.name}'s /ws", f"{heard - made:.2f} s after {b.name} recorded it ({heard - sent:.2f} s "
                         f"after its prompt was queued)" if heard else "not heard")

            # 5. a daily limit set on studio-a stops studio-b before any request
            async with http.post(a.url + "/cometapi_omni/settings", json={"daily_limit_usd": 0.05}) as r:
                saved = r.status == 200
            before = (await fake_state(http, fake_url))["creation_requests"]
            entry = await finished(http, b, await queue(http, b, prompt_graph("a kite over dunes", 9, 1)))
            after = (await fake_state(http, fake_url))["creation_requests"]
            report.check(saved and entry["status"]["status_str"] == "error" and "daily limit" in failure(entry)
                         and after == before, f"a daily limit set on {a.name} stops {b.name}'s next Submit before "
                                              f"any request", failure(entry)[:160])
            async with http.post(a.url + "/cometapi_omni/settings", json={"daily_limit_usd": 0}) as r:
                pass

            # 6. studio-a killed while its task runs (a longer one: it must still run when the kill comes)
            async with http.post(fake_url + "/_fake/control", json={"set": {"processing_seconds": 15}}) as r:
                assert r.status == 200
            await queue(http, a, prompt_graph("a lighthouse in a storm", 11, 1))
            deadline = time.monotonic() + 60
            task_id = None
            while task_id is None and time.monotonic() < deadline:
                rows = [r for r in await tasks_of(http, b) if r["machine"] == a.name and r["task_id"] and
                        "a lighthouse" in r["prompt"]]
                task_id = rows[0]["task_id"] if rows else None
                await asyncio.sleep(0.2)
            a.service.kill()
            killed = time.monotonic()
            saved_on_b = None
            while time.monotonic() - killed < 90:
                rows = [r for r in await tasks_of(http, b) if r["task_id"] == task_id]
                if rows and rows[0]["on_disk"]:
                    saved_on_b = time.monotonic() - killed
                    break
                await asyncio.sleep(0.5)
            video = b.base / "output" / "cometapi_omni" / f"kling_{task_id}.mp4"
            report.check(saved_on_b is not None and video.is_file(),
                         f"{a.name} killed while its task ran: {b.name}'s collector collects the video",
                         f"task {task_id} saved on {b.name} {saved_on_b:.1f} s after the kill" if saved_on_b else
                         f"task {task_id} not collected")
            if video.is_file():
                check_video(video)
        logs = "".join(s.log() for s in services)
        report.check(pg.password not in logs and pg.password not in json.dumps(rows_a),
                     "the database password is in no log and no route's answer")
    finally:
        for service in services:
            service.kill()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=Path, required=True, help="the ComfyUI folder (main.py)")
    parser.add_argument("--python", required=True, help="ComfyUI's Python")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, base directories)")
    parser.add_argument("--max-in-flight", type=int, default=0, metavar="N",
                        help="set the shared tasks-in-flight limit to N first (default: 0, learned from the account)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="studio-check-"))
    report = Report()
    started = time.monotonic()
    try:
        with ThrowawayPostgres() as pg:
            asyncio.run(scenario(args, work, pg, report))
    except Exception as exc:
        report.check(False, "the check could go on", f"{type(exc).__name__}: {exc}")
    finally:
        if not args.keep and all(ok for ok, _, _ in report.results):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"Work folder kept: {work}")
    passed = sum(1 for ok, _, _ in report.results if ok)
    print(f"{'PASS' if passed == len(report.results) else 'FAIL'} {passed} of {len(report.results)} "
          f"in {time.monotonic() - started:.0f} s")
    return 0 if passed == len(report.results) else 1


if __name__ == "__main__":
    sys.exit(main())
