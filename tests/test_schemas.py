"""The jobs table is written twice, once per engine (kling_omni.journal for SQLite, the frozen
migrations of kling_omni.database for PostgreSQL): a column added to one and not the other, or to
Job and to neither, would lose what it records on one engine. No database is needed to see it."""

import re

from kling_omni import database, journal

SHARED_ONLY = {"machine", "video_machine"}  # a shared journal's alone (Job: '' on SQLite)


def jobs_columns(sql: str) -> list[str]:
    body = re.search(r"CREATE TABLE IF NOT EXISTS jobs \((.*?)\n\);", sql, re.DOTALL).group(1)
    names = [line.strip().split()[0] for line in body.strip().splitlines()]
    return [n for n in names if n != "PRIMARY"]


def test_sqlite_table_and_its_added_columns_hold_every_field_of_job_but_the_shared_ones():
    columns = jobs_columns(journal.SCHEMA)
    assert set(columns) == set(journal.JOB_FIELDS) - SHARED_ONLY
    assert {name for name, _ in journal.ADDED_COLUMNS} <= set(columns)


def test_postgres_migrations_hold_every_field_of_job():
    sql = "\n".join(database.MIGRATIONS[v] for v in range(1, database.SCHEMA_VERSION + 1))
    added = re.findall(r"ALTER TABLE jobs ADD COLUMN (?:IF NOT EXISTS )?(\w+)", sql)
    assert set(jobs_columns(sql)) | set(added) == set(journal.JOB_FIELDS)


def test_both_engines_declare_each_common_column_alike_but_for_the_float_type():
    def declarations(sql):
        body = re.search(r"CREATE TABLE IF NOT EXISTS jobs \((.*?)\n\);", sql, re.DOTALL).group(1)
        return {line.strip().split()[0]: " ".join(line.strip().rstrip(",").split()[1:])
                for line in body.strip().splitlines() if not line.strip().startswith("PRIMARY")}
    sqlite, postgres = declarations(journal.SCHEMA), declarations(database.MIGRATIONS[1])
    for name, declared in sqlite.items():
        assert postgres[name].replace("DOUBLE PRECISION", "REAL") == declared, name
