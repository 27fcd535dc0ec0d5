"""`python -m kling_omni tasks` and `collect TASK_ID`, run as a user runs them: a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import av

from fake_cometapi.media import read_index

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "kling_omni", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def environment(server, home, key=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMETAPI")}
    env.update(COMETAPI_BASE_URL=server.base_url, COMETAPI_OMNI_HOME=str(home))
    if key:
        env["COMETAPI_KEY"] = server.key
    return env


def test_collect_downloads_any_task_then_lists_it(fake_server, omni_client, tmp_path):
    state = omni_client.create_task({"model_name": "kling-video-o1", "prompt": "from elsewhere", "duration": "5"})
    env = environment(fake_server, tmp_path / "home")
    done = cli("collect", state.task_id, "--out", str(tmp_path / "videos"), "--interval", "0.05", env=env)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.parent == tmp_path / "videos" and path.suffix == ".mp4"
    with av.open(str(path)) as container:
        assert [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)] == \
            list(range(round(fake_server.video_seconds * fake_server.video_fps)))
    listing = cli("tasks", env=env)
    assert listing.returncode == 0 and state.task_id in listing.stdout and "succeeded" in listing.stdout
    assert str(path) in listing.stdout
    # Collected again: served from disk, the server hears nothing.
    fake_server.clear_records()
    again = cli("collect", state.task_id, "--out", str(tmp_path / "videos"), env=env)
    assert again.returncode == 0 and Path(again.stdout.strip().splitlines()[-1]) == path
    assert fake_server.requests == [] and fake_server.file_requests == []
    # Asked for in another folder: a copy lands there, still nothing is fetched.
    elsewhere = cli("collect", state.task_id, "--out", str(tmp_path / "elsewhere"), env=env)
    copy = Path(elsewhere.stdout.strip().splitlines()[-1])
    assert elsewhere.returncode == 0 and copy == tmp_path / "elsewhere" / path.name
    assert copy.read_bytes() == path.read_bytes() and str(path) in elsewhere.stderr
    assert fake_server.requests == [] and fake_server.file_requests == []
    assert str(path) in cli("tasks", env=env).stdout  # the journal keeps the first file


def test_collect_errors_are_plain_and_keyless(fake_server, tmp_path):
    env = environment(fake_server, tmp_path / "home")
    missing = cli("collect", "424242", "--interval", "0.05", env=env)
    assert missing.returncode == 1 and "424242" in missing.stderr and "Traceback" not in missing.stderr
    assert fake_server.key not in missing.stderr + missing.stdout
    no_key = cli("collect", "424242", env=environment(fake_server, tmp_path / "home", key=False))
    assert no_key.returncode == 1 and "COMETAPI_KEY" in no_key.stderr


def test_tasks_on_an_empty_journal(tmp_path, fake_server):
    listing = cli("tasks", env=environment(fake_server, tmp_path / "empty"))
    assert listing.returncode == 0 and "No tasks" in listing.stdout
