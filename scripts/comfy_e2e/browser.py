"""Headless Chromium driven over the DevTools protocol, and the generic ways a check uses the
ComfyUI page: find elements by role and visible name (one set of steps serves frontends 1.27 and
1.5x, the canvas and Nodes 2.0), run frontend commands, set widgets as their controls do, wait
for a text to settle, type as a person types."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp

from .processes import Service, free_port
from .report import CheckFailed

APP = "window.comfyAPI.app.app"
SETTING = APP + ".extensionManager.setting"
NODES2 = "Comfy.VueNodes.Enabled"


class Page:
    """One Chromium tab over the DevTools protocol: run JS, click, type, take screenshots."""

    def __init__(self, ws):
        self.ws, self.next_id, self.pending, self.errors = ws, 0, {}, []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                future = self.pending.pop(data["id"])
                if not future.done():  # a caller that stopped waiting (a timeout) has cancelled it
                    future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append(f"{details.get('url', '')}: "
                                   f"{details.get('exception', {}).get('description', details.get('text'))}")

    async def send(self, method: str, **params):
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise CheckFailed(f"DevTools {method}: {answer['error']}")
        return answer["result"]

    async def js(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CheckFailed(f"page script failed: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str):
        deadline, error = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                value = await self.js(expression)
            except CheckFailed as exc:  # e.g. the app is not there yet
                value, error = None, str(exc)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise CheckFailed(f"the page did not show {what} within {timeout:.0f} s {error}")

    async def click(self, element_expression: str) -> bool:
        """A real mouse click in the middle of the element (False when there is none)."""
        point = await self.js(f"""(() => {{ const e = {element_expression}; if (!e) return null;
            e.scrollIntoView({{block: "nearest"}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        if not point:
            return False
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=point[0], y=point[1], button="left", clickCount=1)
        return True

    async def holds(self, expression: str) -> bool:
        try:
            return bool(await self.js(f"!!({expression})"))
        except CheckFailed:
            return False

    async def click_until(self, element_expression: str, done_expression: str, timeout: float, what: str) -> None:
        """Click the element until `done` holds. A click while a dialog still opens (it scales in)
        or while its list still loads can land beside the element, or on one about to be replaced."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.holds(done_expression):
                return
            if await self.click(element_expression):
                retry = time.monotonic() + 2
                while time.monotonic() < min(retry, deadline):
                    if await self.holds(done_expression):
                        return
                    await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(0.2)
        raise CheckFailed(f"clicking {what} did not work within {timeout:.0f} s")

    async def type_text(self, text: str) -> None:
        await self.send("Input.insertText", text=text)

    async def press(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code)

    async def shot(self, path: Path, clip: tuple | None = None) -> None:
        """The page as it is now, as a PNG; `clip` (x, y, width, height in CSS px): that part only."""
        import base64
        area = {"clip": dict(zip(("x", "y", "width", "height"), clip), scale=1)} if clip else {}
        data = await self.send("Page.captureScreenshot", format="png", **area)
        path.write_bytes(base64.b64decode(data["data"]))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


# Found the way a person finds them, by role and visible name: markup and class names differ
# between frontend versions (Settings' and Templates' side lists are PrimeVue listbox options
# in 1.27, plain role=button rows in 1.5x), and Nodes 2.0 draws nodes as DOM elements.
PAGE_HELPERS = r"""
window.__check = {
  shown(e) {  // laid out and not hidden (possibly scrolled away)
    if (!e || !e.isConnected) return false;
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
  },
  onScreen(e) {
    if (!__check.shown(e)) return false;
    const r = e.getBoundingClientRect();
    return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
  },
  dialog() {  // the topmost open dialog
    const open = [...document.querySelectorAll("[role=dialog]")].filter(__check.shown);
    return open[open.length - 1] || null;
  },
  named(scope, name) {  // a clickable element whose accessible name is `name`
    const roles = "button, a, [role=button], [role=option], [role=tab], [role=menuitem], [role=treeitem], [role=link]";
    return [...(scope || document).querySelectorAll(roles)].find((e) => __check.shown(e)
      && ((e.getAttribute("aria-label") || "").trim() === name || e.textContent.trim() === name)) || null;
  },
  nodeElement(node) {  // the DOM element a node is drawn as in Nodes 2.0; null on the canvas renderer
    return node ? document.querySelector(`[data-node-id="${node.id}"]`) : null;
  },
  labels(scope) {  // the texts a person reads in `scope`: its shown elements without child elements
    return [...(scope || document).querySelectorAll("*")].filter((e) => !e.children.length && __check.shown(e))
      .map((e) => e.textContent.trim()).filter(Boolean);
  },
  labelled(scope, text) {  // the shown element without child elements whose text is `text`
    return [...(scope || document).querySelectorAll("*")].find((e) => !e.children.length && __check.shown(e)
      && e.textContent.trim() === text) || null;
  },
};
"""


VIEWPORT = (1400, 900)  # CSS px of the page, unless a run asks for another


async def open_page(http: aiohttp.ClientSession, devtools: str, url: str, size: tuple = VIEWPORT) -> Page:
    async with http.put(f"{devtools}/json/new?about:blank") as r:
        target = await r.json()
    page = Page(await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0))
    await page.send("Runtime.enable")
    await page.send("Page.enable")
    await page.send("Page.addScriptToEvaluateOnNewDocument", source=PAGE_HELPERS)
    await page.send("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                    mobile=False)
    origin = re.match(r"https?://[^/]+", url).group(0)
    await page.send("Browser.grantPermissions", origin=origin,
                    permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
    await page.send("Emulation.setFocusEmulationEnabled", enabled=True)  # the clipboard needs a focused page
    await page.send("Page.navigate", url=url)
    return page


async def start_chromium(args, http: aiohttp.ClientSession, work: Path, size: tuple = VIEWPORT) -> str:
    port = free_port()
    # No call home: without these, Chromium keeps trying Google's services (updates, sync, QUIC).
    argv = [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-default-browser-check", "--disable-extensions", f"--remote-debugging-port={port}",
            f"--user-data-dir={work / 'chromium-profile'}", f"--window-size={size[0]},{size[1]}", "about:blank"]
    chromium = Service("Chromium", argv, work / "chromium.log")
    devtools = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not chromium.alive():
            break
        try:
            async with http.get(devtools + "/json/version") as r:
                if r.status == 200:
                    return devtools
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise CheckFailed(f"Chromium did not start: {chromium.log()[-1500:]}")


def stop_chromium() -> None:
    for service in list(Service.running):
        if service.name == "Chromium":
            service.stop()


PACK_EXTENSIONS = 4  # web/omni_nodes.js, key_setup.js, spending_settings.js, tasks_sidebar.js


async def wait_for_app(page: Page) -> list[str]:
    """The ComfyUI app up, with the pack's extensions loaded: their names."""
    await page.wait_for(f"!!({APP}?.graph && {APP}.extensionManager)", 90, "the ComfyUI app")
    return await page.wait_for(f"""(() => {{ const n = {APP}.extensions.map(e => e.name)
        .filter(n => n.startsWith('CometAPI')); return n.length === {PACK_EXTENSIONS} && n; }})()""", 30,
                               "the pack's extensions")


async def frontend_version(page: Page) -> str:
    return await page.js("window.__COMFYUI_FRONTEND_VERSION__ || '?'")


async def reload_page(page: Page) -> list[str]:
    """Reload, as a person presses F5: back when the app and the pack's extensions are (their names)."""
    await page.js("window.__reloaded = true")
    await page.send("Page.reload")
    # A workflow with unsaved changes asks "leave the page?" (beforeunload): a person says yes.
    # While that question is open the page answers nothing, hence a short wait before each try.
    for _ in range(20):
        try:
            await page.send("Page.handleJavaScriptDialog", accept=True)
        except CheckFailed:  # no question open
            pass
        try:
            if await asyncio.wait_for(page.js("!window.__reloaded"), 3):
                break
        except (asyncio.TimeoutError, CheckFailed):
            pass
        await asyncio.sleep(0.5)
    await page.wait_for("!window.__reloaded", 30, "the page reloading")
    names = await wait_for_app(page)
    await asyncio.sleep(2)  # the restored workflow and the first-start dialogs settle
    await close_dialogs(page)
    return names



def command(name: str) -> str:
    """Run a frontend command (its id, as in the keybinding settings)."""
    return f"{APP}.extensionManager.command.execute('{name}'); 1"


async def close_dialogs(page: Page) -> None:
    """Close what a first start opens (1.5x shows the template browser to a new user)."""
    for attempt in range(6):
        if not await page.holds("__check.dialog()"):
            return
        # A focused control (a select just chosen from) keeps Escape to itself: focus leaves it
        # first, and at last the dialog's own close button is clicked.
        await page.js("(() => { document.activeElement?.blur?.(); return 1; })()")
        if attempt < 4:
            await page.press("Escape", 27)
        else:
            await page.js("""(() => { const b = __check.dialog()?.querySelector(
                '.p-dialog-close-button, .p-dialog-header-close, button[aria-label="Close"]'); b?.click(); return 1; })()""")
        await asyncio.sleep(0.5)
    await page.wait_for("!__check.dialog()", 5, "the dialogs closed")


async def show_node(page: Page, node: str) -> None:
    """Scroll the canvas so the node sits near the top left, at 90 %, as a person would look at it."""
    await page.js(f"""(() => {{ const node = {node}, c = {APP}.canvas; c.ds.scale = 0.9;
        c.ds.offset = [-(node.pos[0] - 420), -(node.pos[1] - 120)]; c.setDirty(true, true); return 1; }})()""")
    await asyncio.sleep(1)  # Nodes 2.0 moves its DOM nodes on the next frames


async def set_nodes2(page: Page, wanted: str | None) -> bool:
    """Turn Nodes 2.0 on or off as asked (--nodes2); returns whether it is on."""
    if wanted is not None:
        state = await page.js(f"""(async () => {{ const s = {SETTING};
            if (s.get('{NODES2}') === undefined) return 'unknown';
            await s.set('{NODES2}', {'true' if wanted == 'on' else 'false'}); return s.get('{NODES2}'); }})()""")
        if state == "unknown":
            raise CheckFailed(f"--nodes2 {wanted}: this frontend has no {NODES2} setting")
    return bool(await page.js(f"{SETTING}.get('{NODES2}')"))



def set_widget(node: str, name: str, value) -> str:
    """Set a widget as its own control does (value, then its callback)."""
    return f"""(() => {{ const n = {node}, w = n.widgets.find(w => w.name === '{name}'); w.value = {json.dumps(value)};
        w.callback?.(w.value, {APP}.canvas, n); n.setDirtyCanvas?.(true, true); return 1; }})()"""


def widget_value(node: str, name: str) -> str:
    return f"(({node}.widgets || []).find(w => w.name === '{name}') || {{}}).value"


async def settled_text(page: Page, expression: str, expected: str, timeout: float) -> str:
    """The element's text once it is `expected` (what it is at the end of `timeout` otherwise)."""
    return await settled_text_of(page, f"(() => {{ const e = {expression}; return e ? e.innerText : null; }})()",
                                 expected, timeout)


async def settled_text_of(page: Page, expression: str, expected: str, timeout: float) -> str:
    """The value of `expression` once it is `expected` (what it is at the end of `timeout` otherwise)."""
    deadline, text = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        text = await page.js(expression)
        if text == expected:
            break
        await asyncio.sleep(0.2)
    return text


async def type_into(page: Page, field: str, text: str) -> None:
    """Click a field, clear it, type, press Enter: as a person changes a number."""
    await page.click(field)
    await page.js(f"(() => {{ const e = {field}; e.focus(); e.value = ''; return 1; }})()")
    await page.type_text(text)
    await page.press("Enter", 13)


async def read_clipboard(page: Page) -> str:
    """What a Copy button put on the clipboard (or why it could not be read)."""
    return await page.wait_for("navigator.clipboard.readText().catch(e => String(e))", 5, "the clipboard")
