"""Every failure of `python -m kling_omni` is one plain line on stderr and a non-zero exit code,
whatever raised it: run as a user runs it, a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

from tests.without_root_powers import python_command

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, env, command=None):
    argv = (command or (lambda *a: [sys.executable, *a]))("-m", "kling_omni", *args)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def environment(server, home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMETAPI")}
    env.update(COMETAPI_BASE_URL=server.base_url, COMETAPI_OMNI_HOME=str(home), COMETAPI_KEY=server.key, **extra)
    return env


def one_plain_line(done):
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def finished_task(omni_client):
    return omni_client.create_task({"model_name": "kling-video-o1", "prompt": "from elsewhere", "duration": "5"}).task_id


def test_an_out_folder_that_is_a_file_is_one_redacted_line(fake_server, omni_client, tmp_path):
    task_id = finished_task(omni_client)
    out = tmp_path / f"clips-{fake_server.key}"  # a path that happens to hold the key
    out.write_text("I am a file")
    done = cli("collect", task_id, "--out", str(out), "--interval", "0.05", env=environment(fake_server, tmp_path / "h"))
    line = one_plain_line(done)
    assert line.startswith("error:") and "clips-" in line and "exist" in line.lower()
    assert fake_server.key not in done.stderr + done.stdout
    assert task_id in line  # the paid task can still be collected: the line says which


def test_debug_shows_the_traceback_for_a_bug_report(fake_server, omni_client, tmp_path):
    task_id = finished_task(omni_client)
    out = tmp_path / "clips"
    out.write_text("I am a file")
    done = cli("collect", task_id, "--out", str(out), "--interval", "0.05",
               env=environment(fake_server, tmp_path / "h", COMETAPI_OMNI_DEBUG="1"))
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_a_journal_that_is_a_folder_is_one_line_naming_it(fake_server, tmp_path):
    home = tmp_path / "home"
    (home / "journal.sqlite3").mkdir(parents=True)
    line = one_plain_line(cli("tasks", env=environment(fake_server, home)))
    assert str(home / "journal.sqlite3") in line


def test_a_home_that_is_a_file_is_one_line(fake_server, tmp_path):
    home = tmp_path / "home"
    home.write_text("not a folder")
    line = one_plain_line(cli("--home", str(home), "tasks", env=environment(fake_server, tmp_path)))
    assert str(home) in line and "folder" in line


def test_an_unreadable_home_is_one_line(fake_server, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "journal.sqlite3").write_bytes(b"")
    home.chmod(0)
    try:
        done = cli("tasks", env=environment(fake_server, home), command=python_command)
    finally:
        home.chmod(0o700)
    line = one_plain_line(done)
    assert str(home) in line


def test_a_damaged_journal_is_set_aside_with_a_one_line_warning(fake_server, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "journal.sqlite3").write_bytes(b"garbage " * 100)
    done = cli("tasks", env=environment(fake_server, home))
    assert done.returncode == 0 and "No tasks" in done.stdout
    warning = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and str(home / "journal.sqlite3.corrupt-") in warning[0]


def test_a_usage_mistake_is_one_line(fake_server, tmp_path):
    done = cli("collect", env=environment(fake_server, tmp_path))
    line = one_plain_line(done)
    assert done.returncode == 2 and "task_id" in line and "--help" in line
