"""Several machines, one account, one ledger on PostgreSQL: the money promises across processes.

Each machine is a process of its own (multiprocessing spawn: its own interpreter, connections and
memory), with its own data and output folders and its own name, all on one throwaway PostgreSQL
database and one fake CometAPI account; they start their work together at a barrier, so they race
for real. Docs: docs/several-machines.md.
"""

from __future__ import annotations

import time
from pathlib import Path

from fake_cometapi.server import FakeCometAPI
from kling_omni import store
from kling_omni.request import OmniRequest
from kling_omni.verify import check_video
from tests import money_processes, studio_processes
from tests.money_processes import SPAWN, together

KEY = "test-key-123"


def machine(fake, tmp_path, database_url, name, **extra) -> dict:
    """The environment of one machine: the account's key and URL, the database, its own folders and name."""
    return {"COMETAPI_KEY": fake.key, "COMETAPI_BASE_URL": fake.base_url, "COMETAPI_OMNI_DATABASE_URL": database_url,
            "COMETAPI_OMNI_MACHINE": name, "COMETAPI_OMNI_HOME": str(tmp_path / name / "home"),
            "COMETAPI_OMNI_OUTPUT": str(tmp_path / name / "output"), "COMETAPI_OMNI_POLL_SECONDS": "0.05", **extra}


def shared_settings(tmp_path, **values):
    store.save_settings(tmp_path / "admin", values)  # set from any machine: they are the account's


def test_the_same_intent_queued_on_two_machines_at_once_creates_one_task(tmp_path, database_url):
    """A host that does not enforce external ids, a pace of 1: each intent is sent once, by one machine; the
    other adopts its task and pays nothing. Both get every video."""
    with FakeCometAPI(key=KEY, drops_external_id=True, submitted_seconds=0.1, processing_seconds=0.2) as fake:
        shared_settings(tmp_path, max_in_flight=1, daily_limit_usd=0)
        a, b = machine(fake, tmp_path, database_url, "render-01"), machine(fake, tmp_path, database_url, "render-02")
        first, second = together(money_processes.chain, [(a, "a fox runs through snow", 0, 4),
                                                         (b, "a fox runs through snow", 0, 4)])
        assert first["ids"] == second["ids"] and len(set(first["ids"])) == 4
        assert fake.created_count == 4 and fake.refused_creates == []
        for report in (first, second):
            for path in report["paths"]:
                check_video(Path(path))
        journal = store.open_journal(tmp_path)
        rows = journal.jobs()
        assert sorted(j.task_id for j in rows) == sorted(first["ids"]) and all(j.owner == "" for j in rows)
        assert {j.machine for j in rows} <= {"render-01", "render-02"}


def test_two_machines_of_four_variations_at_an_account_limit_of_three(tmp_path, database_url, postgres):
    """The account allows 3 tasks in flight and so does the shared setting: 8 tasks, never a refusal, no failed
    node, 8 whole videos between the two output folders. Then one machine's prompt queued on the other creates
    nothing."""
    with FakeCometAPI(key=KEY, max_in_flight=3, submitted_seconds=0.2, processing_seconds=0.4) as fake:
        shared_settings(tmp_path, max_in_flight=3, daily_limit_usd=0)
        a, b = machine(fake, tmp_path, database_url, "render-01"), machine(fake, tmp_path, database_url, "render-02")
        first, _ = together(money_processes.chain, [(a, "a fox runs through snow", 0, 4),
                                                    (b, "a heron takes off", 0, 4)])
        assert fake.created_count == 8 and fake.refused_creates == []  # never more than 3 at once was even tried
        videos = sorted((tmp_path / "render-01" / "output").glob("cometapi_omni/*.mp4")) + \
            sorted((tmp_path / "render-02" / "output").glob("cometapi_omni/*.mp4"))
        assert len(videos) == 8
        for video in videos:
            check_video(video)
        (again,) = together(money_processes.chain, [(b, "a fox runs through snow", 0, 4)])
        assert again["ids"] == first["ids"] and fake.created_count == 8
        journal = store.open_journal(tmp_path)
        assert {j.task_id: j.machine for j in journal.jobs()}[first["ids"][0]] == "render-01"
        everything = everything_in(postgres, database_url)
        assert fake.key not in everything and "render-02" in everything  # the key stays on each machine


def everything_in(postgres, database_url) -> str:
    """Every row of every table of the pack's schema, as text."""
    database = database_url.rsplit("/", 1)[1]
    tables = [name for (name,) in postgres.sql("SELECT table_name FROM information_schema.tables WHERE table_schema ="
                                               " 'cometapi_omni'", database=database)]
    return "\n".join(str(postgres.sql(f"SELECT * FROM cometapi_omni.{table}", database=database)) for table in tables)


def test_machines_that_learn_the_account_s_limit_learn_it_together(tmp_path, database_url):
    """No limit set: the account's refusals (429, Kling 1303) teach it, and the lesson is shared. Nothing
    fails and nothing is paid twice."""
    with FakeCometAPI(key=KEY, max_in_flight=3, submitted_seconds=0.2, processing_seconds=0.4) as fake:
        shared_settings(tmp_path, max_in_flight=0, daily_limit_usd=0)
        a, b = machine(fake, tmp_path, database_url, "render-01"), machine(fake, tmp_path, database_url, "render-02")
        together(money_processes.chain, [(a, "a fox runs through snow", 0, 4), (b, "a heron takes off", 0, 4)])
        assert fake.created_count == 8
        assert len(fake.refused_creates) <= 4  # what the first refusals taught both machines


def test_a_daily_limit_that_fits_one_batch_of_two_lets_one_machine_through(tmp_path, database_url):
    """Each round both machines submit a batch of two at the same moment against a limit that fits only one
    more batch: one passes, the other is refused before it sends anything."""
    rounds = 25
    with FakeCometAPI(key=KEY) as fake:
        a, b = machine(fake, tmp_path, database_url, "render-01"), machine(fake, tmp_path, database_url, "render-02")
        reports = together(studio_processes.budget_rounds, [(a, rounds, [0, 1], 1.12), (b, rounds, [10, 11], 1.12)])
        per_round = list(zip(reports[0]["outcomes"], reports[1]["outcomes"]))
        assert all(sorted(pair) == ["passed", "refused"] for pair in per_round), per_round
        assert fake.created_count == 2 * rounds


def test_a_daily_limit_set_on_one_machine_stops_the_other_before_any_request(tmp_path, database_url, monkeypatch):
    with FakeCometAPI(key=KEY) as fake:
        a, b = machine(fake, tmp_path, database_url, "render-01"), machine(fake, tmp_path, database_url, "render-02")
        for name, value in a.items():
            monkeypatch.setenv(name, value)
        store.save_settings(Path(a["COMETAPI_OMNI_HOME"]), {"daily_limit_usd": 0.5})  # on render-01
        (report,) = together(money_processes.chain, [(b, "a fox runs through snow", 0, 1)], errors_allowed=True)
        assert "SpendLimitReached" in report["error"] and "$0.50" in report["error"]
        assert fake.requests == []  # render-02 sent nothing


def test_a_collector_killed_mid_download_leaves_no_paid_video_behind(tmp_path, database_url):
    """render-01's collector dies halfway through a download: its lock and its presence go with its connections,
    and render-02's collector collects the video."""
    with FakeCometAPI(key=KEY) as fake:
        from kling_omni.client import OmniClient
        from kling_omni.pg_journal import PgJournal
        made_on_a = PgJournal(database_url, machine="render-01")
        with OmniClient(fake.key, fake.base_url) as client:
            state = client.create_task(OmniRequest(prompt="a fox", mode="pro", duration=5).payload(
                external_task_id="comfy-killed-1"))
            made_on_a.begin("killed", 1, "comfy-killed-1", prompt="a fox", base_url=fake.base_url,
                            key_id=client.key_id, mode="pro", seconds=5)
        made_on_a.settle("killed", 1, "succeeded", task_id=state.task_id)
        made_on_a.close()
        fake.file_stall = 60.0  # the first download stalls halfway
        a, b = machine(fake, tmp_path, database_url, "render-01"), machine(fake, tmp_path, database_url, "render-02")
        results = SPAWN.Queue()
        dying = SPAWN.Process(target=studio_processes.collector, args=(a, 60, results))
        dying.start()
        watcher = store.open_journal(tmp_path)
        try:
            assert fake.wait_until(lambda: len(fake.file_requests) >= 1, timeout=60)
            assert watcher.is_collecting(state.task_id)  # render-01 holds it, downloading
            survivor = SPAWN.Process(target=studio_processes.collector, args=(b, 30, results))
            survivor.start()
            time.sleep(1.5)
            assert watcher.by_task(state.task_id).video_path == ""  # left to render-01 while it is there
            dying.kill()
            dying.join(10)
            fake.file_stall = 0.0
            fake.release_delays()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not watcher.by_task(state.task_id).video_path:
                time.sleep(0.1)
            row = watcher.by_task(state.task_id)
            assert row.video_machine == "render-02" and row.state == "succeeded"
            check_video(Path(row.video_path))
            assert Path(row.video_path).is_relative_to(tmp_path / "render-02" / "output")
        finally:
            for process in (dying, locals().get("survivor")):
                if process is not None and process.is_alive():
                    process.kill()
                    process.join(10)


def test_the_database_stopped_and_started_mid_run(tmp_path, database_url, postgres):
    """Both machines have created their tasks and their Polls wait when the database stops; it comes back a
    moment later. Every video reaches its graph and its disk, nothing is created twice, and the journal learns
    what happened meanwhile."""
    with FakeCometAPI(key=KEY, submitted_seconds=1.0, processing_seconds=3.0) as fake:
        shared_settings(tmp_path, daily_limit_usd=0)
        a, b = machine(fake, tmp_path, database_url, "render-01"), machine(fake, tmp_path, database_url, "render-02")
        barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
        processes = [SPAWN.Process(target=money_processes.chain, args=(env, prompt, 0, 2, barrier, results))
                     for env, prompt in ((a, "a fox runs through snow"), (b, "a heron takes off"))]
        for process in processes:
            process.start()
        try:
            assert fake.wait_until(lambda: fake.created_count >= 4, timeout=90)
            time.sleep(0.3)  # the Polls are waiting
            postgres.stop()
            time.sleep(1.5)
            postgres.start()
            reports = [results.get(timeout=90) for _ in processes]
        finally:
            postgres.start()
            for process in processes:
                process.join(10)
                if process.is_alive():
                    process.kill()
        for report in reports:
            assert "error" not in report, report.get("trace", report)
            assert len(report["paths"]) == 2
            for path in report["paths"]:
                check_video(Path(path))
        assert fake.created_count == 4
        rows = store.open_journal(tmp_path).jobs()
        assert sorted((j.state, bool(j.video_path)) for j in rows) == [("succeeded", True)] * 4
