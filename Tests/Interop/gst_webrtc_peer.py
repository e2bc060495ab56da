#!/usr/bin/python3
"""A GStreamer webrtcbin peer for drtc's WHIP/WHEP endpoints (all on 127.0.0.1).

Runs under Debian's /usr/bin/python3, whose python3-gi binds the system GStreamer (1.22 on
Debian 12: gstreamer1.0-plugins-bad for webrtcbin, gstreamer1.0-nice for ICE); the interop
tier's venv cannot import gi, so tests drive this file as a subprocess (gst_clients.py).

    gst_webrtc_peer.py publish URL   WHIP: VP8 320x240@30 + Opus 440 Hz, sendonly
    gst_webrtc_peer.py view URL      WHEP: recvonly VP8 + Opus, decoded and counted
    gst_webrtc_peer.py offer FILE [--role publish|view]
                                     writes the offer webrtcbin makes (after gathering) and exits

Options: --bundle-policy max-bundle|max-compat|balanced (default max-bundle: every m-section
after the first is offered with port 0 and a=bundle-only), --datachannel (publish: also offer
a data channel, which drtc rejects).

Reports one JSON object per line on stdout: {"event": "offer", "sdp"}, {"event": "answer",
"status", "sdp", "location"}, {"event": "stats", ...} every 250 ms, {"event": "error",
"message"}. Ends on stdin EOF or SIGTERM, sending DELETE to the session's Location first.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO_SEND = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
              "! videoconvert ! queue ! vp8enc name=enc deadline=1 cpu-used=8 keyframe-max-dist=60 "
              "! rtpvp8pay pt=96 picture-id-mode=15-bit "
              "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! queue")
AUDIO_SEND = ("audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue "
              "! opusenc name=enc ! rtpopuspay pt=111 "
              "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! queue")
RECV_CAPS = {
    "video": "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    "audio": "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2",
}
DECODE = {
    "video": "queue ! rtpvp8depay ! vp8dec name=dec ! fakesink sync=false async=false",
    "audio": "queue ! rtpopusdepay ! opusdec name=dec ! fakesink sync=false async=false",
}
POLICIES = {
    "max-bundle": GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE,
    "max-compat": GstWebRTC.WebRTCBundlePolicy.MAX_COMPAT,
    "balanced": GstWebRTC.WebRTCBundlePolicy.BALANCED,
}


REPORT_LOCK = threading.Lock()


def report(event: str, **fields) -> None:
    """One JSON line, whole: the main loop (stats every 250 ms) and the signalling thread both
    report, and print() writes the text and its newline separately, so unguarded lines could
    interleave and the reader would drop both as bad JSON."""
    line = json.dumps({"event": event, **fields}) + "\n"
    with REPORT_LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()


class Peer:
    def __init__(self, mode: str, role: str, target: str, policy: str, datachannel: bool) -> None:
        self.mode = mode
        self.url = None if mode == "offer" else target
        self.out = target if mode == "offer" else None
        self.loop = GLib.MainLoop()
        self.location: str | None = None
        self.exit_code = 0
        self.counts = {"video": 0, "audio": 0, "sentVideo": 0, "sentAudio": 0}
        self.size: tuple[int, int] | None = None
        self.lock = threading.Lock()

        self.pipe = Gst.Pipeline.new("peer")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        if self.webrtc is None:
            raise SystemExit("webrtcbin not found: apt-get install gstreamer1.0-plugins-bad gstreamer1.0-nice")
        self.webrtc.set_property("bundle-policy", POLICIES[policy])
        self.pipe.add(self.webrtc)
        # libnice leaves loopback out of its host candidates unless told: these peers are
        # loopback-only, like the node they talk to. The wrapper lives as long as the process:
        # with GStreamer 1.22 and PyGObject 3.42, dropping it at once frees webrtcbin's ICE
        # object and the first offer crashes.
        self.ice = self.webrtc.get_property("ice-agent")
        self.ice.set_property("ice-tcp", False)
        self.ice.emit("add-local-ip-address", "127.0.0.1")
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("pad-added", self.on_pad_added)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_bus_error)

        if role == "publish":
            for kind, desc in (("Video", VIDEO_SEND), ("Audio", AUDIO_SEND)):
                branch = Gst.parse_bin_from_description(desc, True)
                self.pipe.add(branch)
                sink = self.webrtc.request_pad_simple("sink_%u")
                branch.get_static_pad("src").link(sink)
                sink.get_property("transceiver").set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
                branch.get_by_name("enc").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.count, "sent" + kind)
        else:
            for kind in ("video", "audio"):
                self.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                                 Gst.Caps.from_string(RECV_CAPS[kind]))
        self.datachannel = datachannel and role == "publish"
        self.offered = self.sent_offer = False

    # --- negotiation -------------------------------------------------------------------------

    def on_negotiation_needed(self, element) -> None:
        if self.offered:
            return
        self.offered = True
        if self.datachannel:
            # Before the offer, so the offer carries an m=application section.
            self.channel = element.emit("create-data-channel", "chat", None)
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, element, None)
        element.emit("create-offer", None, promise)

    def on_offer_created(self, promise, element, _data) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply and reply.has_field("offer") else None
        if offer is None:
            GLib.idle_add(self.fail, f"create-offer failed: {reply.to_string() if reply else 'no reply'}")
            return
        element.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, element, _pspec) -> None:
        if element.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        if self.sent_offer:
            return
        self.sent_offer = True
        sdp = element.get_property("local-description").sdp.as_text()
        report("offer", sdp=sdp)
        if self.mode == "offer":
            with open(self.out, "w") as f:
                f.write(sdp)
            GLib.idle_add(self.quit)
            return
        # HTTP off the streaming thread; the answer is applied on the main loop.
        threading.Thread(target=self.signal, args=(sdp,), daemon=True).start()

    def signal(self, sdp: str) -> None:
        request = urllib.request.Request(self.url, data=sdp.encode(), method="POST",
                                         headers={"Content-Type": "application/sdp"})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, body, location = r.status, r.read().decode(), r.headers.get("Location")
        except urllib.error.HTTPError as e:
            status, body, location = e.code, e.read().decode(errors="replace"), None
        except OSError as e:
            GLib.idle_add(self.fail, f"POST {self.url}: {e}")
            return
        report("answer", status=status, sdp=body if status == 201 else None, body=body if status != 201 else None,
               location=location)
        if status != 201:
            GLib.idle_add(self.fail, f"POST {self.url}: {status} {body}")
            return
        self.location = urllib.parse.urljoin(self.url, location) if location else None
        GLib.idle_add(self.apply_answer, body)

    def apply_answer(self, text: str) -> bool:
        ok, message = GstSdp.SDPMessage.new_from_text(text)
        if ok != GstSdp.SDPResult.OK:
            self.fail(f"GstSdp cannot parse the answer ({ok})")
            return False
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        promise = Gst.Promise.new_with_change_func(self.on_answer_applied, None, None)
        self.webrtc.emit("set-remote-description", answer, promise)
        return False

    def on_answer_applied(self, promise, _a, _b) -> None:
        reply = promise.get_reply()
        # webrtcbin replies with an "error" field when it rejects the description.
        if reply is not None and reply.has_field("error"):
            try:
                why = reply.get_value("error").message
            except (TypeError, AttributeError):
                why = reply.to_string()
            GLib.idle_add(self.fail, f"webrtcbin rejected the answer: {why}")
            return
        report("applied", signaling=self.webrtc.get_property("signaling-state").value_nick)

    # --- media -------------------------------------------------------------------------------

    def on_pad_added(self, _element, pad) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        kind = caps.get_structure(0).get_string("media")
        if kind not in DECODE:
            return
        branch = Gst.parse_bin_from_description(DECODE[kind], True)
        self.pipe.add(branch)
        branch.sync_state_with_parent()
        pad.link(branch.get_static_pad("sink"))
        branch.get_by_name("dec").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.count, kind)

    def count(self, pad, _info, key) -> Gst.PadProbeReturn:
        with self.lock:
            self.counts[key] += 1
            if key == "video" and self.size is None:
                caps = pad.get_current_caps()
                if caps:
                    s = caps.get_structure(0)
                    self.size = (s.get_value("width"), s.get_value("height"))
        return Gst.PadProbeReturn.OK

    def stats(self) -> bool:
        with self.lock:
            counts, size = dict(self.counts), self.size
        report("stats", **counts, width=size[0] if size else 0, height=size[1] if size else 0,
               connection=self.webrtc.get_property("connection-state").value_nick,
               ice=self.webrtc.get_property("ice-connection-state").value_nick)
        return True

    # --- lifecycle ---------------------------------------------------------------------------

    def on_bus_error(self, _bus, message) -> None:  # on the main loop (a bus signal watch)
        err, debug = message.parse_error()
        self.fail(f"{message.src.get_name()}: {err.message} ({debug})")

    def fail(self, message: str) -> bool:
        report("error", message=message)
        self.exit_code = 1
        self.quit()
        return False

    def quit(self, *_args) -> bool:
        if self.location:
            try:
                urllib.request.urlopen(urllib.request.Request(self.location, method="DELETE"), timeout=10).close()
            except OSError:
                pass  # the node may be gone already
            self.location = None
        self.loop.quit()
        return False

    def on_stdin(self, source, condition) -> bool:
        if condition & (GLib.IO_HUP | GLib.IO_ERR) or not source.readline():
            self.quit()
            return False
        return True

    def run(self) -> int:
        if self.mode != "offer":
            GLib.timeout_add(250, self.stats)
            GLib.io_add_watch(sys.stdin, GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, self.on_stdin)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self.quit)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, self.quit)
        self.pipe.set_state(Gst.State.PLAYING)
        self.loop.run()
        self.pipe.set_state(Gst.State.NULL)
        return self.exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["publish", "view", "offer"])
    parser.add_argument("target", help="WHIP/WHEP URL, or the output file for 'offer'")
    parser.add_argument("--role", choices=["publish", "view"], default="publish", help="for 'offer': which offer to make")
    parser.add_argument("--bundle-policy", choices=sorted(POLICIES), default="max-bundle")
    parser.add_argument("--datachannel", action="store_true")
    args = parser.parse_args()
    Gst.init(None)
    role = args.role if args.mode == "offer" else args.mode
    return Peer(args.mode, role, args.target, args.bundle_policy, args.datachannel).run()


if __name__ == "__main__":
    sys.exit(main())
