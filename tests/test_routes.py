"""The key routes, mounted on a plain aiohttp app and called over real loopback HTTP."""

import asyncio
import importlib
import logging
import threading

import pytest
from aiohttp import web
from aiohttp import test_utils  # not imported by name: pytest would try to collect Test* classes

from kling_omni import credentials

routes_module = importlib.import_module("cometapi_kling_omni.nodes.routes")

KEY = "sk-route-0123456789-abcdefghij-klmn7f3a"
ENV_KEY = "sk-environment-0123456789-abcdefgh9e9e"
PREFIX = routes_module.PREFIX
JSON = {"Content-Type": "application/json"}  # what the frontend sends with every POST and DELETE


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(credentials.ENV_VAR, raising=False)


@pytest.fixture
def store(tmp_path):
    return tmp_path / "__cometapi_omni"


class KeyTester:
    """Stands in for the client's cheap authenticated request; records what it got."""

    def __init__(self, answer=(True, "CometAPI accepted the key."), fail=None):
        self.answer, self.fail, self.seen = answer, fail, []
        self.thread = None

    def __call__(self, key):
        self.seen.append(key)
        self.thread = threading.current_thread()
        if self.fail:
            raise self.fail
        return self.answer


def serve(store, tester, scenario):
    """Run `scenario(client)` against the routes on 127.0.0.1; return what it returns."""

    async def main():
        table = web.RouteTableDef()
        routes_module.register(table, lambda: store, tester)
        app = web.Application()
        app.add_routes(table)
        async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


async def call(client, method, path, **kwargs):
    response = await client.request(method, PREFIX + path, **kwargs)
    text = await response.text()
    return response.status, text


def test_post_then_get_shows_only_the_mask(store, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario(client):
        before = await call(client, "GET", "/key")
        posted = await call(client, "POST", "/key", json={"key": f"  {KEY}  "})
        after = await call(client, "GET", "/key")
        return before, posted, after

    before, posted, after = serve(store, KeyTester(), scenario)
    assert before[0] == 200 and '"set": false' in before[1]
    for status, body in (posted, after):
        assert status == 200
        assert KEY not in body and KEY[:-4] not in body
        assert '"ends_with": "7f3a"' in body and '"source": "store"' in body
    assert credentials.resolve_key(store) == KEY
    assert KEY not in caplog.text and "7f3a" in caplog.text  # it did log, masked


def test_env_key_is_reported_as_overriding(store, monkeypatch):
    monkeypatch.setenv(credentials.ENV_VAR, ENV_KEY)

    async def scenario(client):
        await call(client, "POST", "/key", json={"key": KEY})
        response = await client.get(PREFIX + "/key")
        return await response.json()

    status = serve(store, KeyTester(), scenario)
    assert status == {"set": True, "source": "env", "ends_with": "9e9e",
                      "env_overrides": True, "stored": True}


@pytest.mark.parametrize("body, expect", [
    ({"key": "sk-one\nsk-two"}, "line break"),
    ({"key": "   "}, "empty"),
    ({"key": "sk-" + "a" * 1000}, "too long"),
    ({"nokey": KEY}, "Send JSON"),
    ([KEY], "Send JSON"),
])
def test_bad_posts_are_refused_without_echo(store, body, expect, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario(client):
        return await call(client, "POST", "/key", json=body)

    status, text = serve(store, KeyTester(), scenario)
    assert status == 400 and expect in text
    assert "sk-one" not in text and "aaaa" not in text and KEY not in text
    assert KEY not in caplog.text and "sk-one" not in caplog.text
    assert not (store / "key").exists()


def test_malformed_json_is_refused(store):
    async def scenario(client):
        return await call(client, "POST", "/key", data=b"key=" + KEY.encode(),
                          headers={"Content-Type": "application/json"})

    status, text = serve(store, KeyTester(), scenario)
    assert status == 400 and KEY not in text


def test_delete_forgets_the_key(store):
    credentials.save_key(store, KEY)

    async def scenario(client):
        deleted = await call(client, "DELETE", "/key", headers=JSON)
        after = await call(client, "GET", "/key")
        return deleted, after

    deleted, after = serve(store, KeyTester(), scenario)
    assert deleted[0] == 200 and '"set": false' in deleted[1] and '"set": false' in after[1]
    assert not (store / "key").exists()


def test_test_route_uses_the_resolved_key_off_the_event_loop(store, caplog):
    caplog.set_level(logging.DEBUG)
    credentials.save_key(store, KEY)
    tester = KeyTester(answer=(True, "Key works: CometAPI answered."))

    async def scenario(client):
        response = await client.post(PREFIX + "/key/test", headers=JSON)
        return response.status, await response.text()

    status, text = serve(store, tester, scenario)
    assert status == 200 and '"ok": true' in text and "Key works" in text
    assert tester.seen == [KEY]
    assert tester.thread is not threading.main_thread()  # the blocking call ran in a worker
    assert KEY not in text and KEY not in caplog.text


def test_test_route_accepts_an_async_tester(store):
    credentials.save_key(store, KEY)
    seen = []

    async def tester(key):
        seen.append(key)
        return False, "CometAPI refused the key (HTTP 401)."

    async def scenario(client):
        response = await client.post(PREFIX + "/key/test", headers=JSON)
        return await response.json()

    answer = serve(store, tester, scenario)
    assert answer["ok"] is False and "401" in answer["message"]
    assert answer["status"]["ends_with"] == "7f3a"
    assert seen == [KEY]


def test_test_route_without_key_says_how_to_set_one(store):
    tester = KeyTester()

    async def scenario(client):
        response = await client.post(PREFIX + "/key/test", headers=JSON)
        return await response.json()

    answer = serve(store, tester, scenario)
    assert answer["ok"] is False and "COMETAPI_KEY" in answer["message"]
    assert tester.seen == []  # nothing was sent anywhere


def test_tester_errors_are_reported_redacted(store):
    credentials.save_key(store, KEY)
    tester = KeyTester(fail=RuntimeError(f"boom with Authorization: Bearer {KEY}"))

    async def scenario(client):
        response = await client.post(PREFIX + "/key/test", headers=JSON)
        return response.status, await response.text()

    status, text = serve(store, tester, scenario)
    assert status == 200 and '"ok": false' in text and "boom" in text
    assert KEY not in text


def test_routes_follow_the_store_dir_chosen_per_request(tmp_path):
    stores = [tmp_path / "a"]

    async def main():
        table = web.RouteTableDef()
        routes_module.register(table, lambda: stores[-1], KeyTester())
        app = web.Application()
        app.add_routes(table)
        async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
            await client.post(PREFIX + "/key", json={"key": KEY})
            stores.append(tmp_path / "b")
            response = await client.get(PREFIX + "/key")
            return await response.json()

    assert asyncio.run(main())["set"] is False
    assert credentials.resolve_key(tmp_path / "a") == KEY
