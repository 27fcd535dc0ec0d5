"""`make bench-journal` (also part of `make bench`): the journal on SQLite and on PostgreSQL, measured here, now.

1. Journal operation latency, SQLite and PostgreSQL side by side: each step a Submit, a Poll or the
   sidebar makes, `--repeat` times on a journal of `--rows` rows; the median and the 95th percentile.
   PostgreSQL is a throwaway local server (scripts/throwaway_postgres.py) reached over TCP with a
   password, as a studio's would be, with its writes waiting for the disk as SQLite's do (fsync on),
   on the same disk; a server on another host adds its network round trips.
2. Several machines on one account: 4 processes × 25 intents each (their own), all at the same
   moment, against the fake CometAPI with an account limit of 5 tasks in flight (and the shared
   setting at 5). Reported: the wall time against the ideal (100 tasks through 5 slots, each in
   flight for as long as the fake keeps it), the most tasks in flight at any moment (from the fake's
   own clock), the account's refusals, and duplicates (tasks beyond one per intent). The same on one
   SQLite journal (4 processes of one machine) for reference.

Exit status 1 if more than 5 were ever in flight, any intent was paid twice, or a creation was refused.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from scripts.load_pack import load_pack  # noqa: E402

load_pack()

from fake_cometapi.server import FakeCometAPI  # noqa: E402
from kling_omni.journal import Journal  # noqa: E402
from kling_omni.pg_journal import PgJournal  # noqa: E402
from scripts.throwaway_postgres import ThrowawayPostgres  # noqa: E402
from tests import studio_processes  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")
MACHINES, INTENTS, LIMIT = 4, 25, 5
SUBMITTED, PROCESSING = 0.2, 0.3  # seconds a task of the fake spends queued, then processing


def steps(journal, rows: int) -> dict:
    """name -> a callable doing that step once (each call a new intent where the step makes one)."""
    owners = journal.owners()
    run = owners.start_run()
    for n in range(rows):  # the history a sidebar pages through and the ledger sums
        with journal.decide() as tx:
            tx.add_waiting(f"old{n}", 1, f"comfy-old{n}-1", owner=run, prompt="p", base_url="h", key_id="k",
                           mode="pro", seconds=5)
        journal.settle(f"old{n}", 1, "succeeded", task_id=f"9{n:08d}")
    counter = iter(range(10 ** 9))

    def reserve():
        n = next(counter)
        with journal.decide() as tx:
            tx.latest(f"new{n}")
            tx.billing(0)
            tx.add_waiting(f"new{n}", 1, f"comfy-new{n}-1", owner=run, prompt="p", base_url="h", key_id="k",
                           mode="pro", seconds=5)

    def claim():
        n = next(counter)
        with journal.decide() as tx:
            tx.add_waiting(f"c{n}", 1, f"comfy-c{n}-1", owner=run, prompt="p", base_url="h", key_id="k", mode="pro",
                           seconds=5)
        with journal.decide() as tx:
            tx.in_flight("k", 0)
            tx.mark_sending(f"c{n}", 1, run)

    return {
        "latest (a Submit's first look)": lambda: journal.latest("old7"),
        "reserve (decide: limit + waiting row)": reserve,
        "claim a slot (2 decisions)": claim,
        "settle (the created task)": lambda: journal.settle("old3", 1, "queued", task_id="900000003"),
        "note (a task's state)": lambda: journal.update_task("900000005", state="processing"),
        "by_task (a sidebar row)": lambda: journal.by_task("900000009"),
        "jobs (a sidebar page of 50)": lambda: journal.jobs(limit=50),
        "billing (today's totals)": lambda: journal.billing(0),
    }


def latency(journal, rows: int, repeat: int) -> dict:
    measured = {}
    for name, step in steps(journal, rows).items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            step()
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        measured[name] = (statistics.median(times), times[int(0.95 * (len(times) - 1))])
    return measured


def most_in_flight(fake) -> int:
    """From the fake's clock: the most tasks created and not yet ended at any moment."""
    events = []
    for task in fake.tasks.values():
        events += [(task.created_mono, 1), (task.created_mono + task.submitted_seconds + task.processing_seconds, -1)]
    most = now = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        now += step
        most = max(most, now)
    return most


def machines(work: Path, database_url: str) -> dict:
    with FakeCometAPI(key="bench-key-123", max_in_flight=LIMIT, submitted_seconds=SUBMITTED,
                      processing_seconds=PROCESSING) as fake:
        barrier, results = SPAWN.Barrier(MACHINES), SPAWN.Queue()
        processes = []
        for n in range(MACHINES):
            env = {"COMETAPI_KEY": fake.key, "COMETAPI_BASE_URL": fake.base_url, "COMETAPI_OMNI_MACHINE": f"m{n}",
                   "COMETAPI_OMNI_HOME": str(work / ("shared" if not database_url else f"m{n}")),
                   "COMETAPI_OMNI_OUTPUT": str(work / f"out{n}"), "MAX_IN_FLIGHT": str(LIMIT)}
            if database_url:
                env["COMETAPI_OMNI_DATABASE_URL"] = database_url
            processes.append(SPAWN.Process(target=studio_processes.submit_and_wait,
                                           args=(env, f"machine {n} prompt", list(range(INTENTS)), barrier, results)))
        for process in processes:
            process.start()
        reports = [results.get(timeout=600) for _ in processes]
        for process in processes:
            process.join(10)
        errors = [r["error"] for r in reports if "error" in r]
        ids = [i for r in reports for i in r.get("ids", [])]
        return {"errors": errors, "wall": max(r.get("seconds", 0.0) for r in reports), "tasks": fake.created_count,
                "distinct": len(set(ids)), "most": most_in_flight(fake), "refused": len(fake.refused_creates)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=200, help="runs of each journal step (default 200)")
    parser.add_argument("--rows", type=int, default=2000, help="rows in the journal before measuring (default 2000)")
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as folder, ThrowawayPostgres(durable=True) as pg:
        work = Path(folder)
        sqlite = latency(Journal(work / "latency" / "journal.sqlite3"), args.rows, args.repeat)
        shared = PgJournal(pg.create_database("latency"), machine="bench")
        postgres = latency(shared, args.rows, args.repeat)
        shared.close()
        print(f"Journal steps on {args.rows} rows, {args.repeat} runs each (ms: median / 95th percentile)")
        print(f"  {'step':<40} {'SQLite':>16} {'PostgreSQL':>16}")
        for name in sqlite:
            print(f"  {name:<40} {sqlite[name][0]:>7.2f} / {sqlite[name][1]:<6.2f} "
                  f"{postgres[name][0]:>7.2f} / {postgres[name][1]:<6.2f}")
        ideal = INTENTS * MACHINES / LIMIT * (SUBMITTED + PROCESSING)
        print(f"\n{MACHINES} processes x {INTENTS} intents, account limit {LIMIT} in flight, each task "
              f"{SUBMITTED + PROCESSING:g} s in flight: ideal {ideal:.1f} s")
        for engine, url in (("PostgreSQL (4 machines)", pg.create_database("machines")), ("SQLite (1 machine)", "")):
            got = machines(work / engine.split()[0], url)
            right = (not got["errors"] and got["most"] <= LIMIT and got["tasks"] == got["distinct"] == MACHINES * INTENTS
                     and got["refused"] == 0)
            ok = ok and right
            print(f"  {engine:<24} wall {got['wall']:.1f} s ({got['wall'] / ideal:.2f}x ideal), most in flight "
                  f"{got['most']}, tasks {got['tasks']} for {MACHINES * INTENTS} intents (duplicates "
                  f"{got['tasks'] - got['distinct']}), refused {got['refused']}{'' if right else '  MISSED'}")
            for error in got["errors"][:3]:
                print(f"    error: {error}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
