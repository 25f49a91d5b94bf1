"""A small Chrome DevTools Protocol client for driving headless Chromium in tests.

Starts ``chromium --headless=new --remote-debugging-port=0`` with a fresh profile, reads the
DevTools port from ``DevToolsActivePort`` in the profile directory, and speaks CDP to the first
page target over ``websockets.sync.client``: navigate, evaluate JavaScript, and real input
events (mouse clicks at a position, key presses) that go through the browser's input pipeline.

Usage::

    with Browser(CHROMIUM, tmp_path / "profile") as page:
        page.navigate("http://127.0.0.1:8000/")
        page.wait_for("window.vgpsReady === true")
        page.click_element("#btn-success")
        page.press("ArrowRight")
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

_KEYS = {  # key -> (code, windowsVirtualKeyCode, text)
    "ArrowLeft": ("ArrowLeft", 37, ""), "ArrowUp": ("ArrowUp", 38, ""),
    "ArrowRight": ("ArrowRight", 39, ""), "ArrowDown": ("ArrowDown", 40, ""),
    " ": ("Space", 32, " "),
}


class CdpError(RuntimeError):
    """The browser did not start, or answered a command with an error."""


class Browser:
    """Headless Chromium with one page, driven over CDP; a context manager.

    Args:
        executable: the chromium binary.
        profile: an empty directory for the browser's profile (``--user-data-dir``).
        timeout_s: how long to wait for the browser and for each command.
    """

    def __init__(self, executable: str, profile: Path, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        profile.mkdir(parents=True, exist_ok=True)
        self.log = (profile.parent / f"{profile.name}.log").open("wb")
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--remote-debugging-port=0", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--window-size=1280,900",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self._id = 0
        try:
            port = self._port(profile / "DevToolsActivePort")
            self.ws = connect(self._page_socket(port), max_size=None, open_timeout=timeout_s)
        except BaseException:
            self.close()
            raise

    def _port(self, active: Path) -> int:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited with {self.proc.returncode}; see {self.log.name}")
            lines = active.read_text().split() if active.is_file() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            time.sleep(0.1)
        raise CdpError(f"no {active.name} after {self.timeout_s} s")

    def _page_socket(self, port: int) -> str:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise CdpError("chromium shows no page target")

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection and ends the browser."""
        if getattr(self, "ws", None) is not None:
            self.ws.close()
            self.ws = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command; its ``result`` (events in between are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"{method}: no answer in {self.timeout_s} s")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float | None = None) -> Any:
        """Polls until ``expression`` is truthy; its value."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except CdpError:
                value = None  # the page is still loading
            if value:
                return value
            time.sleep(0.05)
        raise CdpError(f"timed out waiting for {expression}")

    def click(self, x: float, y: float) -> None:
        """A real left click at page coordinates (CSS pixels)."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def click_element(self, selector: str) -> tuple[float, float]:
        """Scrolls the element into view (as a person would) and clicks the middle of its
        bounding box; the point clicked."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                            " e.scrollIntoView({block: 'nearest'});"
                            " const r = e.getBoundingClientRect();"
                            " return [r.x, r.y, r.width, r.height]; })()")
        if not box or box[2] <= 0 or box[3] <= 0:
            raise CdpError(f"{selector} is not visible: {box}")
        x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
        self.click(x, y)
        return x, y

    def press(self, key: str) -> None:
        """A key press (keyDown with its text, then keyUp): a letter or a key of ``_KEYS``."""
        if key in _KEYS:
            code, vk, text = _KEYS[key]
        elif len(key) == 1 and key.isalpha():
            code, vk, text = f"Key{key.upper()}", ord(key.upper()), key
        else:
            raise ValueError(f"key {key!r} is not a letter or one of {sorted(_KEYS)}")
        down = {"key": key, "code": code, "windowsVirtualKeyCode": vk}
        self.send("Input.dispatchKeyEvent", type="keyDown", **down,
                  **({"text": text} if text else {}))
        self.send("Input.dispatchKeyEvent", type="keyUp", **down)
