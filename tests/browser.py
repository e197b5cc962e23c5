"""Headless Chromium driven over the Chrome DevTools protocol, for looking at the dashboard.

The protocol runs over ``--remote-debugging-pipe`` (JSON messages ending in a NUL byte; Chromium
reads commands on its fd 3 and writes replies on fd 4), so no websocket client and no debugging
port are needed. Each browser gets a fresh ``--user-data-dir`` and is killed when the block ends.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# The flags the issue names: no sandbox (root in CI), no GPU, nothing that reaches the network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """Debian's ``chromium`` (``.ci/run`` installs it), or another Chromium-family binary on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Page:
    """One tab of a browser, attached with a flat session."""

    def __init__(self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int) -> None:
        self._process = process
        self._out, self._in = to_browser, from_browser
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None

    def call(self, method: str, timeout: float = 30.0, **params: object) -> dict[str, object]:
        """Send one command and wait for its reply (events in between are skipped)."""
        self._next_id += 1
        message: dict[str, object] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result = reply.get("result", {})
                assert isinstance(result, dict)
                return result

    def _read(self, deadline: float) -> dict[str, object]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no reply from Chromium in time")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the pipe (exit code {self._process.poll()})")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message = json.loads(raw)
        assert isinstance(message, dict)
        return message

    def open(self, url: str, *, width: int, height: int) -> None:
        target = self.call("Target.createTarget", url="about:blank")
        attached = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        session = attached["sessionId"]
        assert isinstance(session, str)
        self._session = session
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        value = result.get("result", {})
        assert isinstance(value, dict)
        return value.get("value")

    def wait_for(self, expression: str, done: Callable[[object], bool], *, timeout: float, what: str) -> object:
        """Evaluate ``expression`` every 0.2 s until ``done(value)``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout} s waiting for {what}; last value {value!r}")
            time.sleep(0.2)  # a polling interval, not a wait for something to happen

    def screenshot(self, path: Path) -> Path:
        result = self.call("Page.captureScreenshot", format="png")
        data = result["data"]
        assert isinstance(data, str)
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def headless_page(chromium: str, profile: Path) -> Iterator[Page]:
    """A headless Chromium with a fresh profile in ``profile``, stopped when the block ends."""
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def wire_pipes() -> None:  # in the child, before exec: fd 3 is what it reads, fd 4 what it writes
        reads, writes = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
        os.dup2(reads, 3)  # via fds >= 10, in case the pipes themselves got fds 3 and 4
        os.dup2(writes, 4)

    process = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(3, 4),
        preexec_fn=wire_pipes,
    )
    os.close(to_browser_r)
    os.close(from_browser_w)
    try:
        yield Page(process, to_browser_w, from_browser_r)
    finally:
        process.kill()
        process.wait(timeout=30)
        os.close(to_browser_w)
        os.close(from_browser_r)
