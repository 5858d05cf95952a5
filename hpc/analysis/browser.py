"""Open an HTML file in headless Chromium, collect console errors, take a screenshot.

Used by the report tests (and handy by hand) to prove the report renders offline: it
talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages separated by
NUL bytes on file descriptors 3 and 4), so no websocket library and no TCP port are
needed. Every request the page makes for something that is not inline (``data:``) or the
report file itself is reported, which is how "self-contained" is checked.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RuntimeError):
    """Chromium could not be started or did not answer; the message says which step failed."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What the browser saw while loading the page."""

    title: str = ""
    errors: list[str] = field(default_factory=list)            # console errors, exceptions, failed loads
    external_requests: list[str] = field(default_factory=list)  # anything not data: or the file itself
    content_height: int = 0
    screenshot: Path | None = None


class _Pipe:
    """Minimal DevTools client over the two pipes Chromium opens with --remote-debugging-pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], to_chrome: int, from_chrome: int) -> None:
        self.proc, self.wfd, self.rfd = proc, to_chrome, from_chrome
        self.next_id = 0
        self.buffer = b""
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for Chromium's DevTools answer")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium closed the DevTools pipe (exit code {self.proc.poll()})")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise BrowserError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def drain(self, seconds: float) -> None:
        """Collect events that arrive within ``seconds`` (late console messages)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except BrowserError:
            pass


def check_page(html: str | os.PathLike[str], screenshot: str | os.PathLike[str] | None = None,
               width: int = 1280, max_height: int = 16000, timeout: float = 60.0,
               chromium: str | None = None) -> PageCheck:
    """Load ``html`` in headless Chromium; return errors, external requests and a screenshot."""
    exe = chromium or find_chromium()
    if exe is None:
        raise BrowserError("no chromium executable on PATH (Debian package 'chromium')")
    html = Path(html).resolve()
    url = html.as_uri()
    to_r, to_w = os.pipe()      # we write commands -> chromium reads fd 3
    from_r, from_w = os.pipe()  # chromium writes fd 4 -> we read
    profile = tempfile.mkdtemp(prefix="hpc-chromium-")

    def child_fds() -> None:
        """In the child: put the pipe ends at fds 3 and 4 (inheritable), whatever they were."""
        import fcntl

        high_r = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)   # out of the way of 3 and 4 first
        high_w = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--disable-background-networking", "--disable-component-update", "--mute-audio",
           f"--user-data-dir={profile}", f"--window-size={width},1000", "about:blank"]
    # close_fds=False: Python's own descriptors are non-inheritable anyway; 3 and 4 must survive
    proc = subprocess.Popen(cmd, preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_r)
    os.close(from_w)
    result = PageCheck()
    try:
        cdp = _Pipe(proc, to_w, from_r)
        targets = cdp.call("Target.getTargets", timeout=timeout)["targetInfos"]
        page = next((t for t in targets if t.get("type") == "page"), None)
        target_id = page["targetId"] if page else cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = cdp.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable", session=sid)
        cdp.call("Page.navigate", {"url": url}, session=sid, timeout=timeout)
        cdp.wait_event("Page.loadEventFired", timeout=timeout)
        cdp.drain(0.5)
        metrics = cdp.call("Page.getLayoutMetrics", session=sid)
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        result.content_height = int(size.get("height", 0))
        result.title = cdp.call("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                                session=sid)["result"].get("value", "")
        if screenshot is not None:
            height = max(600, min(result.content_height, max_height))
            cdp.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=sid)
            shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                            session=sid, timeout=timeout)
            target = Path(screenshot)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(shot["data"]))
            result.screenshot = target
        for ev in cdp.events:
            _classify(ev, url, result)
        try:
            cdp.call("Browser.close", timeout=5)
        except BrowserError:
            pass
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_w)
        os.close(from_r)
        shutil.rmtree(profile, ignore_errors=True)
    return result


def _classify(ev: dict[str, Any], url: str, result: PageCheck) -> None:
    method, p = ev.get("method", ""), ev.get("params", {})
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        result.errors.append(f"exception: {d.get('text', '')} {d.get('exception', {}).get('description', '')}".strip())
    elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        result.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                          for a in p.get("args", [])))
    elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        result.errors.append(f"log: {e.get('text', '')} {e.get('url', '')}".strip())
    elif method == "Network.loadingFailed" and not p.get("canceled"):
        result.errors.append(f"load failed: {p.get('errorText', '')} ({p.get('type', '')})")
    elif method == "Network.requestWillBeSent":
        req = p.get("request", {}).get("url", "")
        if req and req != url and not req.startswith(("data:", "about:")):
            result.external_requests.append(req)
