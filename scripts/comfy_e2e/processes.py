"""The processes a check starts, each stopped on exit: the fake CometAPI (its own process, or a
thread of this one when the steps must see what it was sent), ComfyUI on a base directory of its
own with a copy of the pack, and the bookkeeping of free ports and child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import aiohttp

from .pack import PACK_DIR_NAME, REPO
from .report import CheckFailed

START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A child process in its own session, its output in a log file; stop() ends that group."""

    running: list["Service"] = []

    def __init__(self, name: str, argv: list, log_path: Path, cwd=None, env=None):
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        Service.running.append(self)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()
        if self in Service.running:
            Service.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for service in list(cls.running):
            service.stop()


def start_fake_server(work: Path, key: str, processing_seconds: float = 3, name: str = "fake_cometapi",
                      video_seconds: int = 3, extra: tuple[str, ...] = ()) -> tuple[Service, str]:
    argv = [sys.executable, "-m", "fake_cometapi", "--port", "0", "--key", key,
            "--submitted-seconds", "1", "--processing-seconds", str(processing_seconds),
            "--video-seconds", str(video_seconds), "--fps", "24", "--size", "640x360", *extra]
    service = Service(name, argv, work / f"{name}.log", cwd=REPO)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r" at (http://\S+)", service.log())
        if match:
            return service, match.group(1)
        if not service.alive():
            break
        time.sleep(0.1)
    raise CheckFailed(f"the fake server {name} did not start: {service.log()[-2000:]}")


def install_pack(base: Path, source: Path = REPO) -> Path:
    """Copy the pack at `source` into the base directory's custom_nodes (without its private data/)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "node_modules", "data", "__pycache__", "*.pyc",
                                    ".pytest_cache", "demo_output", ".work")
    target = base / "custom_nodes" / PACK_DIR_NAME
    shutil.copytree(source, target, ignore=ignore, symlinks=True)
    return target


def make_base_dir(work: Path, name: str, pack: Path = REPO) -> Path:
    """A ComfyUI base directory with a copy of the pack (this checkout, or another version's
    files) and input/example.png."""
    from PIL import Image, ImageDraw

    base = work / name
    install_pack(base, pack)
    (base / "input").mkdir(parents=True)
    image = Image.new("RGB", (640, 480), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    for i in range(0, 640, 40):
        draw.rectangle([i, 0, i + 19, 479], fill=(200, 120 + i // 8, 60))
    draw.ellipse([220, 140, 420, 340], fill=(250, 240, 200))
    image.save(base / "input" / "example.png")
    return base


def start_comfyui(args, base: Path, port: int, fake_url: str, key: str | None, listen: str = "127.0.0.1",
                  extra_env: dict | None = None, log_name: str | None = None) -> Service:
    env = dict(os.environ)
    env.pop("COMETAPI_KEY", None)
    env.update(COMETAPI_BASE_URL=fake_url, COMETAPI_OMNI_POLL_SECONDS="0.5", PYTHONUNBUFFERED="1", **(extra_env or {}))
    if key is not None:
        env["COMETAPI_KEY"] = key
    argv = [args.python, "main.py", "--cpu", "--listen", listen, "--port", str(port),
            "--disable-auto-launch", "--base-directory", str(base)]
    if getattr(args, "front_end_root", None):
        argv += ["--front-end-root", str(args.front_end_root)]
    return Service("ComfyUI", argv, base.parent / f"{log_name or base.name}.comfyui.log", cwd=args.comfyui, env=env)


async def wait_until_up(http: aiohttp.ClientSession, comfy: Service, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not comfy.alive():
            raise CheckFailed(f"ComfyUI exited during start-up; log tail:\n{comfy.log()[-3000:]}")
        try:
            async with http.get(url + "/system_stats", timeout=aiohttp.ClientTimeout(total=3)) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.5)
    raise CheckFailed(f"ComfyUI did not answer within {START_TIMEOUT:.0f} s")


@contextlib.asynccontextmanager
async def comfyui(args, work: Path, name: str, fake_url: str, key: str | None, listen: str = "127.0.0.1",
                  extra_env: dict | None = None, base: Path | None = None):
    """A ComfyUI of its own (a base directory with a copy of the pack), up and answering, with an
    HTTP session; stopped on exit. Yields (http, url, base, proc, port); proc.log() stays readable
    after. `listen` is its --listen; it is reached on loopback either way. `extra_env`: more
    environment for it (e.g. the pack's timings). `base`: start on this base directory as it is
    (a restart), logging to <name>.comfyui.log beside it."""
    base = base or make_base_dir(work, name)
    port = free_port()
    proc = start_comfyui(args, base, port, fake_url, key, listen, extra_env, log_name=name)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        try:
            await wait_until_up(http, proc, url)
            yield types.SimpleNamespace(http=http, url=url, base=base, proc=proc, port=port)
        finally:
            proc.stop()


def in_process_fake_server(key: str, processing_seconds: float, **options):
    """The fake CometAPI on a thread of this process: the steps count what it was sent, read the
    requests it recorded and end tasks when they want (FakeCometAPI.created_count, .requests,
    .finish). `options`: more of FakeCometAPI's (e.g. follow_request)."""
    from fake_cometapi.server import FakeCometAPI
    return FakeCometAPI(key, submitted_seconds=1, processing_seconds=processing_seconds, video_seconds=3,
                        video_fps=24, video_size=(640, 360), **options).start()
