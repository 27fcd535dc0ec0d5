"""The faults run (--faults, --faults-only): issue 8's promises against the web as it is, and
issue 16's foreign pages, in one ComfyUI with a stored key, started with --listen 0.0.0.0, against
a fake of its own that the check drives through the fake's remote control (POST /_fake/control,
GET /_fake/state). A chunked (and gzipping) file host; 201 and 202 creations, each queued twice; a
0-byte, an HTML and a cut file each before a good one, and HTML every time then queued again; two
429 code 1303 answers before the creation; the journal deleted under ComfyUI, then a new intent and
an old one queued again; cross-site writes to the key and settings routes with a LAN Host and a
rebound name. Then, reached at this machine's LAN address with the daily limit off: a page of
another site POSTs a paid workflow (16 variations of 10 s pro) to /prompt and /api/prompt as
text/plain (refused, no task made, nothing queued) and listens on /ws from its own Origin (no
prompt, state or file name reaches it), while ComfyUI's own page on that address still runs a paid
prompt. Each case is a new intent (its own prompt words), so "one task per intent" is counted on
the fake: the tasks it made, every frame of the MP4 decoded, what the node or the error said."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
import time
import types
from pathlib import Path

import aiohttp

from .comfy import Comfy, connect, node_of, outcome_text, outputs, template_prompt
from .common_checks import check_log, check_no_key, pack_data_dir, pack_key_file
from .media import output_path, video_info
from .processes import comfyui, start_fake_server
from .report import CheckFailed, Report

FAKE_CLIP_FRAMES = 3 * 24  # start_fake_server's clip: --video-seconds 3 --fps 24
LAN_HOST = "192.168.1.20:8188"  # ComfyUI started with --listen on a LAN address, as a browser names it


class FakeControl:
    """The fake server's remote control (POST /_fake/control, GET /_fake/state)."""

    def __init__(self, http: aiohttp.ClientSession, url: str):
        self.http, self.url = http, url

    async def _post(self, body: dict) -> None:
        async with self.http.post(self.url + "/_fake/control", json=body) as r:
            if r.status != 200:
                raise CheckFailed(f"the fake server refused {body}: {await r.text()}")

    async def call(self, name: str, *args, **kwargs) -> None:
        await self._post({"call": name, "args": list(args), "kwargs": kwargs})

    async def set(self, **options) -> None:
        await self._post({"set": options})

    async def state(self) -> dict:
        async with self.http.get(self.url + "/_fake/state") as r:
            return await r.json()


def intent_prompt(info: dict, words: str, submit_id: str | None = None) -> dict:
    """Text to video with these prompt words: one intent. `submit_id` renumbers Submit, which ComfyUI
    then has not cached (its cache key holds the node id): the same intent reaches the pack again."""
    prompt, _ = template_prompt("Kling O1 text to video", info)
    prompt[node_of(prompt, "CometOmniPrompt")]["inputs"]["prompt"] = words
    if submit_id is not None:
        old = node_of(prompt, "CometOmniSubmit")
        prompt[submit_id] = prompt.pop(old)
        prompt[node_of(prompt, "CometOmniPoll")]["inputs"]["task"] = [submit_id, 0]
    return prompt


async def run_intent(comfy: Comfy, fake: FakeControl, base: Path, prompt: dict) -> types.SimpleNamespace:
    """Queue it; what the fake saw meanwhile, what the nodes said, and the MP4 Poll recorded."""
    before = await fake.state()
    run = await comfy.run(prompt)
    after = await fake.state()
    poll, submit = node_of(prompt, "CometOmniPoll"), node_of(prompt, "CometOmniSubmit")
    out = outputs(run, poll)
    entry = (out.get("images") or [{}])[0]
    path = output_path(base, entry) if entry else None
    return types.SimpleNamespace(
        run=run, task_id=(out.get("task_id") or [None])[0], path=path,
        frames=video_info(path)["frames"] if path and path.is_file() else 0,
        new_tasks=after["created"] - before["created"], made=[t["task_id"] for t in after["tasks"][before["created"]:]],
        creations=after["creation_requests"] - before["creation_requests"],
        refused=after["refused_creates"] - before["refused_creates"],
        files=after["file_requests"][len(before["file_requests"]):],
        poll_texts=[t.split("\ntask ")[0] for _, t in comfy.texts(poll, run["start"])],
        submit_texts=[t for _, t in comfy.texts(submit, run["start"])],
        error=(run["error"] or {}).get("exception_message", ""))


def check_whole(report: Report, label: str, r: types.SimpleNamespace, new_tasks: int = 1) -> bool:
    """It ran to success, the fake made `new_tasks` tasks, and every frame of the MP4 decodes."""
    return report.check(r.run["outcome"] == "success" and r.new_tasks == new_tasks and r.frames == FAKE_CLIP_FRAMES,
                        f"{label}: {new_tasks} task{'s' * (new_tasks != 1)} made, the whole video on disk",
                        f"{outcome_text(r.run)}; {r.new_tasks} new task(s), {r.creations} creation request(s); "
                        f"task {r.task_id}: {r.path.name if r.path else 'no file'} has {r.frames} of "
                        f"{FAKE_CLIP_FRAMES} frames; {len(r.files)} file request(s)")


async def raw_http(url: str, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, str]:
    """One request exactly as written (aiohttp would set Host itself): what a page's fetch sends."""
    match = re.match(r"http://([^:/]+):(\d+)", url)
    reader, writer = await asyncio.open_connection(match.group(1), int(match.group(2)))
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"{method} {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                     .encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


async def fault_cross_site(report: Report, comfy: Comfy, key_file: Path, attacker_key: str) -> None:
    """A page of another site writes to the pack's routes on a ComfyUI reached by a LAN address (or
    a rebound DNS name): refused, saying why, and the key file stays as it was. ComfyUI's own page
    on that LAN address still gets through."""
    before = key_file.read_bytes(), key_file.stat().st_mtime_ns
    settings = (await comfy.text("GET", "/cometapi_omni/settings"))[1]
    attack = {"Host": LAN_HOST, "Origin": "http://evil.example", "Content-Type": "text/plain"}
    body = json.dumps({"key": attacker_key}).encode()
    attempts = [("POST", "/cometapi_omni/key", attack, body, "http://evil.example"),
                ("POST", "/api/cometapi_omni/key", attack, body, "http://evil.example"),
                ("DELETE", "/cometapi_omni/key", attack, b"", "http://evil.example"),
                ("POST", "/cometapi_omni/settings", attack, b'{"background_collect": false}', "http://evil.example"),
                # DNS rebinding: the page's own name now points at ComfyUI, so Origin matches Host.
                ("POST", "/cometapi_omni/key", {**attack, "Host": "evil.example:8188",
                                                "Origin": "http://evil.example:8188"}, body, "DNS rebinding")]
    for method, path, headers, data, said in attempts:
        status, text = await raw_http(comfy.url, method, path, headers, data)
        try:
            message = json.loads(text).get("error", "")
        except ValueError:
            message = text
        report.check(status == 403 and said in message,
                     f"faults: a cross-site {method} {path} (Host {headers['Host']}, Origin {headers['Origin']}, "
                     f"text/plain) is refused, saying why", f"HTTP {status}: {message[:220]}")
    status = json.loads((await comfy.text("GET", "/cometapi_omni/key"))[1])
    report.check((key_file.read_bytes(), key_file.stat().st_mtime_ns) == before and status.get("source") == "store"
                 and (await comfy.text("GET", "/cometapi_omni/settings"))[1] == settings,
                 "faults: after the cross-site writes the key file and the settings are unchanged",
                 json.dumps(status))
    own = {"Host": LAN_HOST, "Origin": f"http://{LAN_HOST}", "Sec-Fetch-Site": "same-origin"}
    read = await raw_http(comfy.url, "GET", "/cometapi_omni/key", own)
    tested = await raw_http(comfy.url, "POST", "/cometapi_omni/key/test", {**own, "Content-Type": "application/json"},
                            b"{}")
    report.check(read[0] == 200 and tested[0] == 200 and json.loads(tested[1]).get("ok") is True,
                 f"faults: ComfyUI's own page on {LAN_HOST} still reads the key status and tests the key",
                 f"GET {read[0]}, POST key/test {tested[0]}: {tested[1][:200]}")


def lan_address() -> str | None:
    """One of this machine's non-loopback IPv4 addresses, as another machine on the LAN reaches it."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    addresses = [info[4][0] for info in infos if not info[4][0].startswith("127.")]
    if not addresses:
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet leaves: this only picks the outgoing interface
            addresses = [a for a in [probe.getsockname()[0]] if not a.startswith("127.")]
    return addresses[0] if addresses else None


async def ws_messages(ws, seconds: float) -> list:
    """Everything a socket receives for `seconds`: text as str, binary frames as bytes."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            got.append(msg.data)
        else:
            break
    return got


async def fault_foreign_pages(report: Report, c, fake: FakeControl, info: dict) -> None:
    """ComfyUI started with --listen 0.0.0.0 and reached at this machine's LAN address: a page of
    another site POSTs a paid workflow (16 variations) to /prompt as a simple cross-site request
    (text/plain, no preflight), and listens on /ws. The daily limit is off, so only the /prompt
    guard stands between that page and the money. ComfyUI's own page on the LAN address still runs
    a paid prompt."""
    lan = lan_address()
    if not report.check(lan is not None, "faults: this machine has a non-loopback address to reach ComfyUI by"):
        return
    host = f"{lan}:{c.port}"
    lan_url = f"http://{host}"
    log = c.proc.log()
    warned = re.search(r"CometAPI Omni: ComfyUI listens on (\S+) port \d+ \(--listen\), beyond this machine[^\n]*", log)
    report.check(warned and "0.0.0.0" in warned.group(1), "faults: --listen 0.0.0.0: the pack says at start-up what it "
                 "exposes", warned.group(0)[:400] if warned else "no such line in the ComfyUI log")
    status, text = await raw_http(c.url, "POST", "/cometapi_omni/settings",
                                  {"Host": f"127.0.0.1:{c.port}", "Content-Type": "application/json"},
                                  b'{"daily_limit_usd": 0}')
    report.note(f"daily limit turned off for this step (from this machine): HTTP {status}")
    evil = "http://evil.example"
    spy = await c.http.ws_connect(f"{lan_url}/ws", headers={"Origin": evil}, max_msg_size=0)
    words = "faults: a page of another site queues 16 paid variations"
    prompt = intent_prompt(info, words)
    submit = node_of(prompt, "CometOmniSubmit")
    prompt[submit]["inputs"]["variations"] = 16
    prompt[node_of(prompt, "CometOmniPrompt")]["inputs"]["duration"] = 10
    body = json.dumps({"prompt": prompt, "client_id": "evil"}).encode()
    before = await fake.state()
    attack = {"Host": host, "Origin": evil, "Content-Type": "text/plain;charset=UTF-8"}
    for path, headers, what in (("/prompt", {**attack, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
                                ("/prompt", attack, "Origin only (an older browser)"),
                                ("/api/prompt", {**attack, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site")):
        status, text = await raw_http(lan_url, "POST", path, headers, body)
        try:
            error = json.loads(text).get("error") or {}
        except ValueError:
            error = {"message": text}
        # Newer ComfyUI (0.33) refuses Sec-Fetch-Site: cross-site itself, with a bare 403, before the pack sees it.
        by = ("the pack" if error.get("type") == "cometapi_omni_cross_site"
              else "ComfyUI itself (a bare 403)" if status == 403 and not text.strip() else None)
        report.check(status == 403 and by is not None,
                     f"faults: a cross-site text/plain POST {path} of a paid workflow ({what}) is refused",
                     f"HTTP {status}, by {by}: {error.get('message', '')[:200]} {error.get('details', '')[:200]}")
    await asyncio.sleep(3)
    after = await fake.state()
    queue = await c.http.get(c.url + "/queue")
    pending = await queue.json()
    report.check(after["created"] == before["created"] and after["creation_requests"] == before["creation_requests"]
                 and not pending["queue_running"] and not pending["queue_pending"],
                 "faults: the refused cross-site prompts created no task and queued nothing",
                 f"{after['created'] - before['created']} new task(s), {after['creation_requests'] - before['creation_requests']} "
                 f"creation request(s); queue {len(pending['queue_running'])} running, {len(pending['queue_pending'])} pending")
    # ComfyUI's own page on the LAN address: same origin, JSON, its own websocket.
    page = Comfy(c.http, lan_url)
    await page.connect(headers={"Origin": lan_url})
    own_words = "faults: ComfyUI's own page on the LAN address queues a paid prompt"
    before = await fake.state()
    run = await page.run(intent_prompt(info, own_words),
                         headers={"Origin": lan_url, "Sec-Fetch-Site": "same-origin"})
    after = await fake.state()
    await page.close()
    report.check(run["outcome"] == "success" and after["created"] - before["created"] == 1,
                 "faults: a same-origin POST /prompt from ComfyUI's page on the LAN address still runs (1 task)",
                 f"{outcome_text(run)}; {after['created'] - before['created']} new task(s)")
    seen = await ws_messages(spy, 2.0)
    await spy.close()
    texts = [m for m in seen if isinstance(m, str)]
    events = [json.loads(t)["data"] for t in texts if json.loads(t).get("type") == "cometapi_omni.task"]
    leaked = [w for w in (words, own_words, "kling_", ".mp4", "succeeded", "processing") if any(w in t for t in texts)]
    binary = [m for m in seen if isinstance(m, bytes)]
    report.check(events and all(set(e) == {"task_id", "as_of"} for e in events) and not leaked and not binary,
                 "faults: a WebSocket from another site's page receives no prompt text, state or file name",
                 f"{len(texts)} text messages ({len(events)} task events, e.g. {events[-1:] or 'none'}), "
                 f"{len(binary)} binary frames; found: {leaked or 'nothing'}")


async def fault_chunked(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """A CDN that streams without a length (chunked, in pieces over a second or two), then one that
    also gzips it uninvited."""
    await fake.set(file_framing="chunked", file_trickle=[32 * 1024, 0.2])
    r = await run_intent(comfy, fake, base, intent_prompt(info, "faults: a chunked CDN, no Content-Length"))
    await fake.set(file_trickle=None)
    check_whole(report, "faults: chunked CDN", r)
    downloading = [t for t in r.poll_texts if t.startswith("downloading")]
    report.check(any(re.fullmatch(r"downloading \d+\.\d MB", t) for t in downloading)
                 and not any("%" in t for t in downloading),
                 "faults: chunked CDN: Poll shows the bytes received (no total to make a percentage of)",
                 " | ".join(dict.fromkeys(downloading)) or "no download text")
    await fake.set(file_encoding="gzip")
    r = await run_intent(comfy, fake, base, intent_prompt(info, "faults: a chunked CDN that gzips the MP4"))
    await fake.set(file_framing="length", file_encoding="")
    check_whole(report, "faults: chunked + gzip CDN", r)


async def fault_created_2xx(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """A creation answered 201 (or 202) is a task: queued again, no second task."""
    for status in (201, 202):
        await fake.set(create_status=status)
        words = f"faults: creation answered {status}"
        r = await run_intent(comfy, fake, base, intent_prompt(info, words))
        check_whole(report, f"faults: {status} creation", r)
        again = await run_intent(comfy, fake, base, intent_prompt(info, words, submit_id="503"))
        report.check(again.run["outcome"] == "success" and again.new_tasks == 0 and again.creations == 0
                     and again.task_id == r.task_id and any("from disk" in t for t in again.poll_texts),
                     f"faults: {status} creation: the same intent queued again gets its task, nothing sent",
                     f"task {again.task_id}, {again.creations} creation request(s); Poll: {again.poll_texts[-1:]}")
    await fake.set(create_status=200)


async def fault_broken_files(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """A 0-byte file, an HTML page served as the file, a body cut short without a length, each then a
    good file: kept aside, said on the node, fetched again."""
    for kind, words in (("empty", "empty (0 bytes)"), ("html", "web page"), ("cut", "cut short")):
        await fake.call("break_next_files", kind)
        r = await run_intent(comfy, fake, base, intent_prompt(info, f"faults: the file host serves {kind}, then good"))
        check_whole(report, f"faults: {kind} file, then a good one", r)
        said = [t for t in r.poll_texts if "broken video" in t]
        kept = sorted(p.name for p in r.path.parent.glob(f"kling_{r.task_id}.mp4.broken-*")) if r.path else []
        report.check(len(r.files) == 2 and said and words in said[0] and kept and kept[0] in said[0],
                     f"faults: {kind} file: Poll says what the host served and where it is kept",
                     f"{len(r.files)} file requests; {(said or ['nothing said'])[0][:300]}")
    # Broken every time: the run stops with a plain message; queued again later, the video comes.
    await fake.call("break_next_files", "html", 3)
    words = "faults: the file host serves HTML three times"
    r = await run_intent(comfy, fake, base, intent_prompt(info, words))
    report.check(r.run["outcome"] == "error" and len(r.made) == 1 and "broken 3 times" in r.error
                 and f"Task {r.made[0]} is finished and paid" in r.error,
                 "faults: a file host that serves HTML every time: the error says the video is paid and how to get it",
                 r.error[:500])
    again = await run_intent(comfy, fake, base, intent_prompt(info, words))
    check_whole(report, "faults: HTML three times, then queued again", again, new_tasks=0)


async def fault_busy_account(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """Two creations refused with 429 code 1303 (too many tasks in flight), then accepted."""
    await fake.set(retry_after=1)
    await fake.call("reject_next_create", 429, 1303)
    await fake.call("reject_next_create", 429, 1303)
    r = await run_intent(comfy, fake, base, intent_prompt(info, "faults: two 429 1303 answers before creation"))
    await fake.set(retry_after=None)
    check_whole(report, "faults: two 429 1303 answers", r)
    waiting = [t for t in r.submit_texts if t.startswith("waiting for a free slot")]
    report.check(r.refused == 2 and r.creations == 3 and waiting and "Kling 1303" in waiting[0],
                 "faults: two 429 1303 answers: Submit waits, saying why, then creates once",
                 f"{r.refused} refused, {r.creations} creation requests; Submit: {(waiting or ['nothing'])[0]}")


async def fault_journal_deleted(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """The journal deleted while ComfyUI runs (the README's way to forget intents): a new intent
    works, and an old one queued again is refused by Kling as a duplicate of its external id,
    so the pack collects the task it already has."""
    old_words = "faults: made before the journal was deleted"
    old = await run_intent(comfy, fake, base, intent_prompt(info, old_words))
    check_whole(report, "faults: journal: an intent before the deletion", old)
    journal = pack_data_dir(base) / "journal.sqlite3"
    gone = sorted(p.name for p in journal.parent.glob(journal.name + "*"))
    for path in journal.parent.glob(journal.name + "*"):
        path.unlink()
    report.note(f"deleted {', '.join(gone)} while ComfyUI runs")
    new = await run_intent(comfy, fake, base, intent_prompt(info, "faults: a new intent after the journal was deleted"))
    check_whole(report, "faults: journal deleted: a new intent", new)
    report.check(journal.is_file(), "faults: journal deleted: it is made again", str(journal.relative_to(base)))
    again = await run_intent(comfy, fake, base, intent_prompt(info, old_words, submit_id="504"))
    check_whole(report, "faults: journal deleted: an old intent queued again", again, new_tasks=0)
    report.check(again.task_id == old.task_id and again.creations == 1,
                 "faults: journal deleted: the old intent gets its own task back (its external id is refused "
                 "as a duplicate, the pack looks it up)",
                 f"task {again.task_id} (first run: {old.task_id}); {again.creations} creation request refused; "
                 f"the video fetched again: {len(again.files)} file request(s)")


async def faults_run(args, report: Report, work: Path, key: str) -> None:
    """Each fault of issue 8's 'Done when' in a real ComfyUI, against a fake of its own."""
    _, fake_url = start_fake_server(work, key, name="fake_cometapi_faults")
    attacker_key = "sk-attacker" + secrets.token_hex(8)  # random: the pack's sources (copied too) never hold it
    history = ""
    async with comfyui(args, work, "faults", fake_url, None, listen="0.0.0.0") as c:
        report.note(f"faults run: ComfyUI --listen 0.0.0.0 at {c.url}, stored key, fake CometAPI at {fake_url}")
        comfy, info = await connect(c)
        fake = FakeControl(c.http, fake_url)
        status, body = await comfy.text("POST", "/cometapi_omni/key", json={"key": key})
        if not report.check(status == 200, "faults: the key is stored from this machine", body):
            raise CheckFailed("the faults run needs a stored key")
        key_file = pack_key_file(c.base)
        key_before = key_file.read_bytes()

        await fault_chunked(report, comfy, fake, c.base, info)
        await fault_created_2xx(report, comfy, fake, c.base, info)
        await fault_broken_files(report, comfy, fake, c.base, info)
        await fault_busy_account(report, comfy, fake, c.base, info)
        await fault_journal_deleted(report, comfy, fake, c.base, info)
        await fault_cross_site(report, comfy, key_file, attacker_key)  # near last: if it fails, only it fails
        await fault_foreign_pages(report, c, fake, info)  # last: it turns the daily limit off

        state = await fake.state()
        intents = {t["prompt"] for t in state["tasks"]}
        report.check(state["created"] == len(intents) and state["created"] > 0,
                     "faults: one task per intent over the whole run",
                     f"{state['created']} tasks for {len(intents)} intents, {state['creation_requests']} creation "
                     f"requests ({state['refused_creates']} answered 429)")
        report.check(not any(f["authorization"] for f in state["file_requests"]),
                     "faults: no file request carried an Authorization header", f"{len(state['file_requests'])} file requests")
        report.check(key_file.read_bytes() == key_before, "faults: the key file is unchanged at the end")
        history = await comfy.history_text()
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "faults run", expected=("DownloadError", "BrokenVideo"))  # the HTML-every-time case
    texts = {"history": history, "ComfyUI log": log, "fake server log": (work / "fake_cometapi_faults.log").read_text()}
    check_no_key(report, "faults run", key, c.base, texts, allowed={pack_key_file(c.base)})
    check_no_key(report, "faults run: the attacker's key", attacker_key, c.base, texts, allowed=set())
