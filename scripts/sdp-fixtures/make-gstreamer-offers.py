"""Writes real GStreamer webrtcbin offers to Fixtures/sdp/gstreamer-*.sdp.

Needs the Makefile's GSTREAMER_PACKAGES (`make deps`); the peer runs under Debian's
/usr/bin/python3. Run from the package root:
    python3 scripts/sdp-fixtures/make-gstreamer-offers.py
Each offer is webrtcbin's local description after ICE gathering, with bundle-policy max-bundle:
the first m-section carries the transport, every later one has port 0 and a=bundle-only
(RFC 8843 §7.2), and every m-section has its own a=setup:actpass.
"""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
PEER = ROOT / "Tests" / "Interop" / "gst_webrtc_peer.py"
OUT = ROOT / "Fixtures" / "sdp"

CASES = {
    # A WHIP publisher: VP8 video, then Opus audio (bundle-only).
    "video-audio-sendonly": ["--role", "publish"],
    # The same with a data channel (bundle-only), which drtc rejects.
    "datachannel-video-audio": ["--role", "publish", "--datachannel"],
    # A WHEP viewer: recvonly VP8, then recvonly Opus (bundle-only).
    "viewer-recvonly": ["--role", "view"],
}

probe = "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None); print(Gst.version_string())"
print(subprocess.run(["/usr/bin/python3", "-c", probe], check=True, capture_output=True, text=True).stdout.strip())
for name, args in CASES.items():
    path = OUT / f"gstreamer-{name}.sdp"
    subprocess.run(["/usr/bin/python3", str(PEER), "offer", str(path), *args], check=True, stdout=subprocess.DEVNULL, timeout=60)
    print("wrote", path.name, path.stat().st_size)
