"""Headless Chromium (Debian chromium + chromium-driver, selenium) publishing by WHIP and watching
by WHEP through drtc's SFU, all on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

import drtc_helpers as h

WEB = Path(__file__).resolve().parent / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    """Serves Tests/Interop/web on http://127.0.0.1 (a secure context for getUserMedia)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(WEB))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/media.html"
    server.shutdown()


class Browser:
    def __init__(self, page: str) -> None:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless=new", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                     "--allow-loopback-in-peer-connection", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--mute-audio"):
            opts.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_script_timeout(30)
        self.driver.get(page)

    def call(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait_status(self, want: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.call("return window.state")
            if state["status"] == want:
                return
            assert state["status"] != "error", state["error"]
            assert time.monotonic() < deadline, f"status {state} after {timeout}s, wanted {want}"
            time.sleep(0.1)

    def stats(self) -> list[dict]:
        return self.driver.execute_async_script("const done = arguments[0]; window.rtpStats().then(done);")

    def wait_stats(self, predicate, timeout: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if predicate(s):
                return s
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {s}"
            time.sleep(0.25)

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture
def browsers(page_url: str) -> Iterator[callable]:
    opened: list[Browser] = []

    def open_one() -> Browser:
        b = Browser(page_url)
        opened.append(b)
        return b

    yield open_one
    for b in opened:
        try:
            b.quit()
        except Exception:
            pass


def inbound(stats: list[dict]) -> dict:
    rows = [s for s in stats if s["type"] == "inbound-rtp"]
    return rows[0] if rows else {"framesDecoded": 0, "packetsLost": 0, "frameWidth": 0, "packetsReceived": 0}


def test_chromium_publisher_to_chromium_viewer(node: h.NodeProcess, browsers) -> None:
    """The fake camera, published by WHIP, is decoded by a WHEP viewer: > 100 frames, no loss."""
    pub = browsers()
    pub.call("window.publish(arguments[0], 'cam', false, 640, 480)", node.url)
    pub.wait_status("published")
    viewer = browsers()
    viewer.call("window.view(arguments[0], 'cam', null)", node.url)
    viewer.wait_status("viewing")
    stats = viewer.wait_stats(lambda s: inbound(s)["framesDecoded"] > 100, 90, "> 100 decoded frames")
    row = inbound(stats)
    assert row["packetsLost"] == 0, row
    assert row["frameWidth"] == 640, row
    m = node.metrics()
    assert h.parse_metric(m, "drtc_media_sessions", {"kind": "active"}) == 2


def test_chromium_simulcast_viewers_get_different_layers(node: h.NodeProcess, browsers) -> None:
    """A three-layer simulcast publisher; a viewer asking for rid=q and one asking for rid=h get
    different resolutions, each switched in on a keyframe."""
    pub = browsers()
    pub.call("window.publish(arguments[0], 'sim', true, 960, 540)", node.url)
    pub.wait_status("published")
    pub.wait_stats(lambda s: sum(1 for r in s if r["type"] == "outbound-rtp" and r["framesEncoded"] > 0) >= 2,
                   90, "at least two simulcast layers encoding")
    low, high = browsers(), browsers()
    low.call("window.view(arguments[0], 'sim', 'q')", node.url)
    high.call("window.view(arguments[0], 'sim', 'h')", node.url)
    low.wait_status("viewing")
    high.wait_status("viewing")
    lo = inbound(low.wait_stats(lambda s: inbound(s)["framesDecoded"] > 60, 90, "low layer frames"))
    hi = inbound(high.wait_stats(lambda s: inbound(s)["framesDecoded"] > 60, 90, "high layer frames"))
    assert lo["frameWidth"] == 240, lo
    assert hi["frameWidth"] == 480, hi
    assert lo["frameWidth"] != hi["frameWidth"]
