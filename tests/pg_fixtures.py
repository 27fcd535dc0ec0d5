"""pytest fixtures around a throwaway PostgreSQL (scripts/throwaway_postgres.py), for the shared journal's tests.

- postgres: one server for the whole run, started by the first test that asks (about half a second).
- database_url: a new empty database of that server for one test, named by COMETAPI_OMNI_DATABASE_URL
  for its duration; the shared journals opened meanwhile are closed after it.

Nothing is skipped: without pgserver and psycopg (dev dependencies), a test that asks fails, saying how
to install them.
"""

from __future__ import annotations

import itertools

import pytest

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    from scripts.throwaway_postgres import PostgresUnavailable, ThrowawayPostgres

    try:
        import psycopg  # noqa: F401
        server = ThrowawayPostgres()
        server.init()
        server.start()
    except (PostgresUnavailable, ImportError) as exc:
        pytest.fail(f"No PostgreSQL for the shared journal's tests: {exc}", pytrace=False)
    yield server
    server.__exit__(None, None, None)


@pytest.fixture
def database_url(postgres, monkeypatch):
    from kling_omni import store
    from cometapi_kling_omni.nodes import runtime

    postgres.start()  # a test that stopped it and failed on the way leaves it stopped
    url = postgres.create_database(f"test_{next(_numbers)}")
    monkeypatch.setenv("COMETAPI_OMNI_DATABASE_URL", url)
    monkeypatch.setenv("COMETAPI_OMNI_MACHINE", "machine-a")
    runtime._journal_at.cache_clear()
    yield url
    store.forget_journals()
    runtime._journal_at.cache_clear()
