"""The pages' scripts in a real browser: headless Chromium driven over its DevTools protocol.

Skipped where no Chromium is installed (Debian: `apt-get install chromium`; scripts/screenshot needs
it too). What it proves that the HTTP tests cannot: the live filter hides rows, counts them and puts
the first dist found into every line to copy; copy buttons appear and copy the line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
import pytest_asyncio  # pants: no-infer-dep (installed with pytest-aiohttp, the [pytest] tool)
from aiohttp.test_utils import TestClient

from relay.web.app import Settings
from relay.conftest import NS, MakeClient, Story

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on the PATH (apt-get install chromium)")


class Page:
    """One tab, spoken to over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.errors: list[str] = []  # script exceptions, console errors, failed loads, as they come

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call = next(self._ids)
        await self.ws.send_str(json.dumps({"id": call, "method": method, "params": params}))
        for _ in range(10_000):  # events come between answers
            message = json.loads((await self.ws.receive(timeout=30)).data)
            self._note(message)
            if message.get("id") == call:
                assert "error" not in message, message
                return dict(message["result"])
        raise AssertionError(f"no answer to {method}")

    def _note(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(json.dumps(params.get("args"))[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            # The 404 pages are meant to be 404s; the browser logs each such load as an error.
            if "404" not in entry.get("text", ""):
                self.errors.append(f"{entry.get('url')}: {entry.get('text')}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def open(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        for _ in range(200):
            if await self.evaluate("document.readyState") == "complete" and await self.evaluate("location.href") == url:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{url} did not load")


@pytest_asyncio.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Page]:
    profile = tmp_path / "chromium"
    assert CHROMIUM is not None
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(600):
            if port_file.exists() and port_file.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tab = Page(ws)
                await tab.send("Page.enable")
                await tab.send("Runtime.enable")
                await tab.send("Log.enable")
                # A headless tab has no focus, and the clipboard API asks for it.
                await tab.send("Emulation.setFocusEmulationEnabled", enabled=True)
                yield tab
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_STATE = """(() => ({
  shown: document.getElementById("shown").textContent,
  rows: Array.from(document.querySelectorAll("#dists tr[data-dist]")).filter(r => !r.hidden).map(r => r.dataset.dist),
  lines: Array.from(document.querySelectorAll(".copyline pre")).map(p => p.textContent),
  buttons: Array.from(document.querySelectorAll("button.copy-button")).filter(b => !b.hidden).length,
}))()"""


def _type(query: str) -> str:
    return f"""(() => {{ const box = document.getElementById("q"); box.value = {json.dumps(query)};
      box.dispatchEvent(new Event("input")); }})()"""


@pytest.mark.asyncio
async def test_the_live_filter_updates_rows_count_and_copy_lines(make_client: MakeClient, story: Story, browser: Page) -> None:
    client: TestClient = await make_client(Settings(upstream="https://pypi.org/simple"))
    url = str(client.make_url("/main/"))
    await browser.open(url)
    state = await browser.evaluate(_STATE)
    assert state["shown"] == "4" and len(state["rows"]) == 4 and state["buttons"] == 5
    first = state["rows"][0]
    assert all(line.endswith(" " + first) for line in state["lines"])
    await browser.evaluate(_type("import textkit.core.stats"))
    state = await browser.evaluate(_STATE)
    assert state["shown"] == "1" and state["rows"] == [f"{NS}.core"]
    assert all(line.endswith(f" {NS}.core") for line in state["lines"]), state["lines"]
    await browser.evaluate(_type("cli"))
    state = await browser.evaluate(_STATE)
    assert state["rows"] == [f"{NS}.cli"] and all(line.endswith(f" {NS}.cli") for line in state["lines"])
    await browser.evaluate(_type("<b>nothing</b>"))
    state = await browser.evaluate(_STATE)
    assert state["shown"] == "0" and state["rows"] == []
    assert await browser.evaluate('document.getElementById("none").hidden') is False
    assert await browser.evaluate('document.getElementById("none").innerHTML') == "No dist matches &lt;b&gt;nothing&lt;/b&gt;."
    # A server-side search (?q=, as without a script) shows the same and the script can widen it again.
    await browser.open(url + "?q=stats")
    assert (await browser.evaluate(_STATE))["rows"] == [f"{NS}.core"]
    await browser.evaluate(_type(""))
    assert (await browser.evaluate(_STATE))["shown"] == "4"


@pytest.mark.asyncio
async def test_a_copy_button_copies_its_line(make_client: MakeClient, story: Story, browser: Page) -> None:
    client: TestClient = await make_client(Settings(upstream="https://pypi.org/simple"))
    url = str(client.make_url("/main/-/monorepo-textkit-core/"))
    await browser.open(url)
    origin = url.split("/main/")[0]
    await browser.send(
        "Browser.grantPermissions", origin=origin, permissions=["clipboardReadWrite", "clipboardSanitizedWrite"]
    )
    await browser.evaluate('document.querySelector("button[data-copy=line-install]").click()')
    for _ in range(100):
        label = await browser.evaluate('document.querySelector("button[data-copy=line-install]").textContent')
        if label != "Copy":
            break
        await asyncio.sleep(0.05)
    assert label == "Copied"
    copied = await browser.evaluate("navigator.clipboard.readText()")
    expected = await browser.evaluate('document.getElementById("line-install").textContent')
    assert copied == expected and copied.startswith("%pip install -c ") and copied.endswith(f" {NS}.core")


@pytest.mark.asyncio
async def test_every_page_loads_without_a_script_error_or_an_outside_request(
    make_client: MakeClient, story: Story, browser: Page
) -> None:
    client: TestClient = await make_client(Settings())
    await browser.send("Network.enable")
    paths = ["/", "/main/", "/main/?q=stats", "/main/-/monorepo-textkit-core/", "/main/-/monorepo-envs-nlp/",
             f"/{story.shas[0]}/-/monorepo-textkit-cli/", "/no-such-ref/", "/main/-/no-such-dist/"]
    for path in paths:
        url = str(client.make_url(path))
        await browser.open(url)
        # Every resource the page loaded came from the relay (no external assets).
        loaded = await browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        origin = str(client.make_url("/"))
        assert all(name.startswith(origin) for name in loaded), (path, loaded)
        title = await browser.evaluate("document.title")
        assert "export-dists relay" in title, (path, title)
    assert browser.errors == []
