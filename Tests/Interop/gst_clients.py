"""GStreamer webrtcbin peers (gst_webrtc_peer.py) driven from the interop tier's venv.

The peer needs Debian's python3-gi and GStreamer plugins, which bind /usr/bin/python3, not the
venv's interpreter: each peer is a subprocess that reports JSON lines on stdout.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
PEER = Path(__file__).resolve().with_name("gst_webrtc_peer.py")
APT_HINT = ("apt-get install gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-plugins-base "
            "gstreamer1.0-nice gir1.2-gst-plugins-bad-1.0 python3-gi (make deps does)")


def gstreamer_version() -> str:
    """The GStreamer version behind webrtcbin, or an AssertionError saying what to install."""
    probe = ("import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None); "
             "assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('nicesrc'), 'no webrtcbin/nicesrc'; "
             "print(Gst.version_string())")
    r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"GStreamer webrtcbin is not usable from {SYSTEM_PYTHON}: {r.stderr.strip()[-400:]}\n{APT_HINT}"
    return r.stdout.strip()


class GstPeer:
    """One webrtcbin publisher or viewer process; `events` holds everything it reported."""

    def __init__(self, mode: str, url: str, log: Path, *args: str) -> None:
        self.mode = mode
        self.log = log
        self.events: list[dict] = []
        self.unparsed: list[str] = []  # stdout lines that were not JSON, for failure messages
        self.cond = threading.Condition()
        self._stderr = open(log, "w")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(PEER), mode, url, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                with self.cond:
                    self.unparsed.append(line[:300])
                continue
            with self.cond:
                self.events.append(event)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _failure(self) -> str | None:
        errors = [e["message"] for e in self.events if e["event"] == "error"]
        if errors:
            return "; ".join(errors)
        if self.proc.poll() is not None:
            return f"the {self.mode} peer exited with {self.proc.returncode}; stderr in {self.log}"
        return None

    def wait_event(self, name: str, timeout: float) -> dict:
        """The first event called `name`; fails at once if the peer reports an error or exits."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = next((e for e in self.events if e["event"] == name), None)
                if found:
                    return found
                failure = self._failure()
                assert failure is None, f"waiting for '{name}': {failure}"
                remaining = deadline - time.monotonic()
                assert remaining > 0, (f"timed out after {timeout}s waiting for the {self.mode} peer's '{name}'; "
                                       f"it reported {[e['event'] for e in self.events][-12:]}, unparsed lines {self.unparsed[-3:]}")
                self.cond.wait(min(remaining, 0.5))

    def wait_stats(self, predicate, timeout: float, what: str) -> dict:
        """The first stats report (every 250 ms) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                stats = [e for e in self.events[seen:] if e["event"] == "stats"]
                seen = len(self.events)
                for s in stats:
                    if predicate(s):
                        return s
                failure = self._failure()
                assert failure is None, f"waiting for {what}: {failure}"
                remaining = deadline - time.monotonic()
                last = next((e for e in reversed(self.events) if e["event"] == "stats"), None)
                assert remaining > 0, f"timed out after {timeout}s waiting for {what}; last stats {last}"
                self.cond.wait(min(remaining, 0.5))

    def close(self) -> int:
        """Ends the peer (it sends DELETE for its session first); returns its exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._stderr.close()
        return self.proc.returncode
