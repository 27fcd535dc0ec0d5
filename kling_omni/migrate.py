"""`python -m kling_omni db copy --from <journal.sqlite3>`: a machine's SQLite journal into the shared one.

Idempotent: copying the same journal again changes nothing, and copying it again after it went on
being used (before the machine was switched over) brings only what changed. Every task and its cost
is kept:

- An intent's row (fingerprint, attempt) that the database lacks is added; one it has is brought up
  to date only when the copy was updated later, and never loses a task id, a video or a reported
  charge the database already holds.
- A task collected by id (no intent of ours) is added only when no row holds that task yet: another
  machine's copy may have it as the intent that made it, and that row learns what the collection did
  (its video, on this machine's disk). Copied the other way round, the intent's row takes the
  collected one in (kling_omni.journal.fold_adopted): one task is one row.
- Two machines that ran the same intent on a host that does not refuse a repeated external id made
  two paid tasks under one (fingerprint, attempt). Both are kept: the one copied second as a task
  collected by id (a 'collected:' row, with what it bills and its video), and the copy says so.
- Rows are nobody's in the database (owner ''): the runs that owned them were this machine's alone.
  They record the machine whose disk holds their videos (`--machine`, this machine by default).
- What the hosts are known to do is merged; and the settings that guard money (rates, daily limit,
  tasks in flight) are copied from the settings.json beside the journal only where the database has
  none yet: a value someone set for the whole account is never overwritten.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from . import shared_settings
from .errors import JournalError, OmniError
from .journal import JOB_FIELDS, Job, fold_adopted, learned_by_collection
from .settings import SETTINGS_FILE

BATCH = 500


@dataclass
class Copied:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    hosts: int = 0
    settings: tuple = ()
    twice: list = field(default_factory=list)  # (task the database held, task added beside it) of one intent

    def text(self, source: Path, target: str) -> str:
        rows = self.added + self.updated + self.unchanged
        settings = (f" Settings copied where the database had none: {', '.join(self.settings)}." if self.settings
                    else " No settings copied (the database has its own, or the journal's folder has none).")
        twice = (f" {len(self.twice)} intent{' was' if len(self.twice) == 1 else 's were'} made twice, once on "
                 f"another machine (the host did not refuse the repeated external id), so both tasks were paid: "
                 f"{'; '.join(f'task {added} beside task {held}' for held, added in self.twice)}. Both are kept, "
                 f"the one from this journal listed as collected by id." if self.twice else "")
        return (f"Copied {source} into {target}: {rows} row{'' if rows == 1 else 's'} ({self.added} added, "
                f"{self.updated} brought up to date, {self.unchanged} already there), {self.hosts} host"
                f"{'' if self.hosts == 1 else 's'}.{settings}{twice}")


# What a refused batch of the copy says: the batches before it are in; the copy is idempotent.
COPY_UNDONE, COPY_AGAIN = "This batch of rows was not copied (those before it were)", "run db copy again"


def copy_journal(source: Path, journal, *, machine: str) -> Copied:
    """Copy the SQLite journal at `source` into `journal` (a PgJournal), rows written as held on `machine`."""
    jobs, hosts = _read_sqlite(source)
    copied = Copied()
    columns = [name for name in Job.__dataclass_fields__ if name not in ("machine", "video_machine")]
    for start in range(0, len(jobs), BATCH):
        # one transaction per batch, serialized with every machine's decisions
        with journal.decide(undone=COPY_UNDONE, again=COPY_AGAIN) as tx:
            for job in jobs[start:start + BATCH]:
                copied_as = _copy_row(tx, job, columns, machine, copied)
                setattr(copied, copied_as, getattr(copied, copied_as) + 1)
    with journal.decide(undone=COPY_UNDONE, again=COPY_AGAIN) as tx:
        for base_url, echoes in hosts:
            tx._db.execute("INSERT INTO hosts (base_url, echoes_external_id) VALUES (?,?) ON CONFLICT (base_url) DO"
                           " UPDATE SET echoes_external_id = GREATEST(hosts.echoes_external_id,"
                           " EXCLUDED.echoes_external_id)", (base_url, int(echoes)))
            copied.hosts += 1
    copied.settings = _copy_settings(source.parent / SETTINGS_FILE, journal)
    return copied


def _copy_row(tx, job: dict, columns: list, machine: str, copied: Copied) -> str:
    """'added', 'updated' or 'unchanged'."""
    found = tx._db.execute("SELECT * FROM jobs WHERE fingerprint=? AND attempt=?",
                           (job["fingerprint"], job["attempt"])).fetchone()
    if found is not None and found["task_id"] and job["task_id"] and found["task_id"] != job["task_id"]:
        # The same intent made on two machines: two paid tasks. The one here is kept beside the other, as
        # a task collected by id (its external id is the other's: one row may hold it).
        twin = {**job, "fingerprint": f"collected:{job['task_id']}", "attempt": 0, "external_task_id": None}
        copied_as = _copy_row(tx, twin, columns, machine, copied)
        if copied_as == "added":
            copied.twice.append((found["task_id"], job["task_id"]))
        return copied_as
    if found is None:
        values = {**job, "owner": "", "machine": machine, "video_machine": machine if job["video_path"] else ""}
        holder = job["fingerprint"].startswith("collected:") and job["task_id"] and tx._db.execute(
            "SELECT * FROM jobs WHERE task_id=?", (job["task_id"],)).fetchone()
        if holder:  # another row holds this task already (the intent that made it): it learns what was collected
            learned = learned_by_collection(holder, values)
            if not learned:
                return "unchanged"
            tx._db.execute(f"UPDATE jobs SET {', '.join(f'{name}=?' for name in learned)} WHERE fingerprint=? AND"
                           f" attempt=?", (*learned.values(), holder["fingerprint"], holder["attempt"]))
            return "updated"
        if values["external_task_id"] and tx._db.execute("SELECT 1 FROM jobs WHERE external_task_id=?",
                                                         (values["external_task_id"],)).fetchone():
            return "unchanged"  # the same attempt under another key (cannot happen: ids are per intent)
        names = list(values)
        tx._db.execute(f"INSERT INTO jobs ({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
                       tuple(values[n] for n in names))
        if values["task_id"]:  # collected by id on another machine before this intent's copy came
            fold_adopted(tx._db, values["fingerprint"], values["attempt"], values["task_id"])
        return "added"
    if job["updated_at"] <= found["updated_at"]:
        if job["task_id"] and job["task_id"] == found["task_id"]:  # older, yet it may know more of the task
            learned = learned_by_collection(found, {**job, "video_machine": machine if job["video_path"] else ""})
            if not learned:
                return "unchanged"
            tx._db.execute(f"UPDATE jobs SET {', '.join(f'{name}=?' for name in learned)} WHERE fingerprint=? AND"
                           f" attempt=?", (*learned.values(), job["fingerprint"], job["attempt"]))
            return "updated"
        if not (job["task_id"] and not found["task_id"]):
            return "unchanged"
        # Older, but it holds the task the newer row never got (refused, uncertain): the task is kept, as below.
    # Newer here: its fields, except that nothing the database knows of a task is lost.
    merged = {name: job[name] for name in columns if name not in ("fingerprint", "attempt", "owner", "created_at")}
    for kept in ("task_id", "unit_deduction", "video_url"):
        merged[kept] = job[kept] or found[kept]
    if job["video_path"]:
        merged["video_machine"] = machine
    else:
        merged["video_path"], merged["video_machine"] = found["video_path"], found["video_machine"]
    if found["task_id"] and not job["task_id"]:
        merged["state"] = found["state"]  # a task found meanwhile (by another machine) stays found
    assignments = ", ".join(f"{name}=?" for name in merged)
    tx._db.execute(f"UPDATE jobs SET {assignments} WHERE fingerprint=? AND attempt=?",
                   (*merged.values(), job["fingerprint"], job["attempt"]))
    if merged["task_id"]:
        fold_adopted(tx._db, job["fingerprint"], job["attempt"], merged["task_id"])
    return "updated"


def _read_sqlite(source: Path) -> tuple:
    """(rows as dicts of this version's columns, (base_url, echoes) pairs), read-only."""
    source = Path(source)
    if not source.is_file():
        raise OmniError(f"--from {source}: no such file. Give the journal.sqlite3 to copy (ComfyUI keeps it in "
                        f"ComfyUI/user/__cometapi_omni/, or the pack's data/ folder).")
    try:
        db = sqlite3.connect(source.absolute().as_uri() + "?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            jobs = [{**dict.fromkeys(JOB_FIELDS), **Job(**{k: row[k] for k in row.keys() if k in JOB_FIELDS}).__dict__}
                    for row in db.execute("SELECT * FROM jobs ORDER BY created_at")]
            hosts = [(row[0], row[1]) for row in db.execute("SELECT base_url, echoes_external_id FROM hosts")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise JournalError(f"The journal {source} cannot be read ({exc}); nothing was copied.", path=source) from exc
    return jobs, hosts


def _copy_settings(path: Path, journal) -> tuple:
    """The money settings of this machine's settings.json, into the database where it has none."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    if not isinstance(raw, dict):
        return ()
    from .settings import validated
    wanted = {}
    for name in ("daily_limit_usd", "max_in_flight"):
        if name in raw:
            try:
                wanted[name] = json.dumps(validated({name: raw[name]})[name])
            except OmniError:
                pass  # a bad value stays behind
    for rate, value in (raw.get("rates") or {}).items() if isinstance(raw.get("rates"), dict) else ():
        try:
            for name, checked in validated({"rates": {rate: value}})["rates"].items():
                wanted[f"{shared_settings.RATE_PREFIX}{name}"] = json.dumps(checked)
        except OmniError:
            pass
    if "format" not in raw and wanted.get("daily_limit_usd") == "0.0":
        del wanted["daily_limit_usd"]  # an old file's 0 meant "never set" (kling_omni.settings.SETTINGS_FORMAT)
    return tuple(shared_settings.write(journal, list(wanted.items()), overwrite=False)) if wanted else ()
