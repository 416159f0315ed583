"""A headless Chromium driven over the DevTools protocol (on a pipe, no port), for tests of HTML reports.

One browser serves every page of a test module. `Browser.open(path)` loads a page, waits until the page says
it has drawn its charts (`<body data-ready>`), and returns what a person would be shown: console messages and
uncaught exceptions (with their levels), each chart's drawn shapes, the page's text, and a full-page
screenshot on request.
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

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe")
CHARTS_JS = """JSON.stringify(Array.from(document.querySelectorAll('div.chart')).map(function (chart) {
  var shapes = Array.from(chart.querySelectorAll('.cartesianlayer .trace path, .cartesianlayer .trace rect'));
  var drawn = shapes.filter(function (s) { var box = s.getBBox(); return box.width > 0 || box.height > 0; });
  return {id: chart.id, drawn_attr: Number(chart.dataset.drawn || 0), shapes: drawn.length,
          svg: chart.querySelectorAll('svg.main-svg').length, title: chart.parentElement.querySelector('h3').textContent};
}))"""


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Page:
    console: list[dict[str, Any]]  # {"level", "text"} for every console call and uncaught exception
    charts: list[dict[str, Any]]
    text: str
    body: dict[str, str]
    requests: list[str] = field(default_factory=list)  # what the page fetched beyond its own file
    screenshot: Path | None = None
    problems: list[str] = field(default_factory=list)  # console errors, warnings and exceptions

    def __post_init__(self) -> None:
        self.problems = [f"{m['level']}: {m['text']}" for m in self.console if m["level"] in ("error", "warning")]


class Browser:
    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="mcpool-chromium-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: the pipe ends on fds 3 and 4, where Chromium looks for them
            high_r, high_w = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                        preexec_fn=wire, close_fds=False,  # else 3 and 4 are closed after wire()
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer, self.next_id, self.events = b"", 0, []

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_chrome)
        os.close(self.from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout_s: float = 30) -> dict[str, Any]:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            reply = self.read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(f"{method}: no reply in {timeout_s} s")

    def read_message(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression: str, session: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return result.get("result", {}).get("value")

    def open(self, path: Path, screenshot: Path | None = None, width: int = 1280, timeout_s: float = 30,
             clip_js: str | None = None, pdf: Path | None = None) -> Page:
        """Load a page and read what it shows. `clip_js`: an expression giving [top, bottom] in CSS pixels, to
        keep only that band of the page in the screenshot."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.events = []
        try:
            for domain in ("Runtime.enable", "Page.enable", "Log.enable", "Network.enable"):
                self.send(domain, session=session)
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                            "mobile": False}, session)
            self.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session)
            deadline = time.monotonic() + timeout_s
            while self.evaluate("document.body && document.body.dataset.ready", session) != "yes":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path}: the page never said it had drawn its charts")
                time.sleep(0.1)
            body = json.loads(self.evaluate("JSON.stringify(Object.assign({}, document.body.dataset))", session))
            page = Page(console_messages(self.events, session), json.loads(self.evaluate(CHARTS_JS, session)),
                        self.evaluate("document.body.innerText", session), body, fetched(self.events, session, path))
            if screenshot is not None:
                page.screenshot = self.capture(session, screenshot, width, clip_js)
            if pdf is not None:  # printed as the browser's print dialog would (print styles, A4)
                printed = self.send("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69}, session, 60)
                pdf.write_bytes(base64.b64decode(printed["data"]))
            return page
        finally:
            self.send("Target.closeTarget", {"targetId": target})

    def capture(self, session: str, path: Path, width: int, clip_js: str | None = None) -> Path:
        height = int(self.evaluate("document.documentElement.scrollHeight", session))
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                        "mobile": False}, session)
        time.sleep(0.3)  # plotly redraws responsive charts on resize
        options: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip_js:
            top, bottom = self.evaluate(f"JSON.stringify({clip_js})", session) and json.loads(
                self.evaluate(f"JSON.stringify({clip_js})", session))
            options["clip"] = {"x": 0, "y": top, "width": width, "height": bottom - top, "scale": 1}
        shot = self.send("Page.captureScreenshot", options, session)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def fetched(events: list[dict[str, Any]], session: str, path: Path) -> list[str]:
    """Every request of the page other than for the page itself (inline data: URLs are not requests)."""
    own = Path(path).resolve().as_uri()
    return [url for event in events if event.get("sessionId") == session
            and event.get("method") == "Network.requestWillBeSent"
            for url in [event.get("params", {}).get("request", {}).get("url", "")]
            if url != own and not url.startswith(("data:", "about:"))]


def console_messages(events: list[dict[str, Any]], session: str) -> list[dict[str, Any]]:
    """Console calls, uncaught exceptions and browser log entries of one page, as {"level", "text"}."""
    found = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        params = event.get("params", {})
        if event.get("method") == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            found.append({"level": {"warn": "warning"}.get(params.get("type"), params.get("type")), "text": text})
        elif event.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append({"level": "error", "text": details.get("exception", {}).get("description")
                          or details.get("text", "exception")})
        elif event.get("method") == "Log.entryAdded":
            entry = params.get("entry", {})
            found.append({"level": entry.get("level"), "text": entry.get("text")})
    return found
