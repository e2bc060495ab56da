"""GStreamer's webrtcbin (Debian 12: GStreamer 1.22, gst-plugins-bad) against drtc's SFU, the third
WebRTC stack of the suite after aiortc and Chromium, all on 127.0.0.1.

webrtcbin checks answers more strictly than the other two: every m-section must carry
`a=setup`, and with bundle-policy max-bundle it offers every section after the first with port 0
and `a=bundle-only` (RFC 8843 §6), so its audio reaches the room only if drtc bundles such
sections (Specs/media.md, "SDP").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import drtc_helpers as h
import gst_clients as gc
import media_clients as mc

# 5 s of media: 30 frames/s of VP8, 50 Opus frames/s.
VIDEO_FRAMES, AUDIO_FRAMES = 150, 250


@pytest.fixture(scope="module")
def gst_version() -> str:
    return gc.gstreamer_version()


@pytest.fixture
def gst(tmp_path: Path, gst_version: str) -> Iterator[Callable[..., gc.GstPeer]]:
    peers: list[gc.GstPeer] = []

    def start(mode: str, url: str, *args: str) -> gc.GstPeer:
        peer = gc.GstPeer(mode, url, tmp_path / f"gst-{mode}-{len(peers)}.stderr.log", *args)
        peers.append(peer)
        return peer

    yield start
    for p in peers:
        p.close()


def sections(sdp: str) -> list[list[str]]:
    """The m-sections of an SDP, each as its lines (the m= line first)."""
    out: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


def section(sdp: str, kind: str) -> list[str]:
    return next(s for s in sections(sdp) if s[0].startswith(f"m={kind} "))


def assert_bundle_only_offer(offer: str) -> None:
    """The shape under test: max-bundle, audio offered bundle-only with port 0."""
    audio = section(offer, "audio")
    assert audio[0].startswith("m=audio 0 "), audio[0]
    assert "a=bundle-only" in audio
    assert section(offer, "video")[0].startswith("m=video 9 ")


def assert_answer_accepts_everything(answer: str) -> None:
    for s in sections(answer):
        assert "a=setup:passive" in s, f"{s[0]}: no a=setup in the m-section"
        assert "a=bundle-only" not in s
    for kind in ("video", "audio"):
        assert not section(answer, kind)[0].startswith(f"m={kind} 0 "), f"{kind} was rejected"


def test_gstreamer_max_bundle_publisher_reaches_an_aiortc_viewer(node: h.NodeProcess, gst) -> None:
    """webrtcbin publishes VP8 + Opus by WHIP with max-bundle (audio bundle-only); it applies the
    answer, connects, and an aiortc WHEP viewer decodes 5 s of its video and of its audio."""
    pub = gst("publish", f"{node.url}/whip/gst")
    assert_bundle_only_offer(pub.wait_event("offer", 60)["sdp"])
    answer = pub.wait_event("answer", 60)
    assert answer["status"] == 201, answer
    assert_answer_accepts_everything(answer["sdp"])
    assert pub.wait_event("applied", 30)["signaling"] == "stable"
    pub.wait_stats(lambda s: s["connection"] == "connected" and s["sentVideo"] > 0 and s["sentAudio"] > 0, 60,
                   "the publisher connected and encoding")
    assert h.parse_metric(node.metrics(), "drtc_media_producers") == 2, "video and the bundle-only audio"

    async def scenario() -> None:
        viewer = await mc.view(node.url, "gst", video=True, audio=True)
        await mc.wait_for(lambda: viewer.frames["video"] >= VIDEO_FRAMES and viewer.frames["audio"] >= AUDIO_FRAMES, 120,
                          f"{VIDEO_FRAMES} video and {AUDIO_FRAMES} audio frames from webrtcbin decoded by aiortc")
        assert viewer.sizes == {(320, 240)}
        await viewer.session.pc.close()

    asyncio.run(scenario())
    assert pub.close() == 0


def test_a_gstreamer_publisher_outlives_the_consent_timeout(node: h.NodeProcess, gst) -> None:
    """webrtcbin (libnice without consent freshness) keeps its pair alive with binding
    indications, not authenticated checks: its session must not end at the 30-s consent timeout
    while its media flows. 40 s after it connected, the node still holds it, has expired no
    session, and an aiortc viewer decodes its video."""
    pub = gst("publish", f"{node.url}/whip/long")
    assert pub.wait_event("answer", 60)["status"] == 201
    pub.wait_stats(lambda s: s["connection"] == "connected" and s["sentVideo"] > 0, 60, "the publisher connected")
    connected = time.monotonic()
    # The property is about time passing: watch the node through 40 s (10 s beyond the consent
    # timeout), failing as soon as it expires the session.
    while time.monotonic() - connected < 40:
        metrics = node.metrics()
        assert h.parse_metric(metrics, "drtc_media_sessions_total", {"event": "expired"}) == 0, \
            f"the node expired webrtcbin's session {time.monotonic() - connected:.0f} s after it connected"
        time.sleep(2)
    assert h.parse_metric(node.metrics(), "drtc_media_producers") == 2

    async def scenario() -> None:
        viewer = await mc.view(node.url, "long", video=True, audio=False)
        await mc.wait_for(lambda: viewer.frames["video"] >= 30, 120, "30 video frames from the 40-s-old webrtcbin session")
        await viewer.session.pc.close()

    asyncio.run(scenario())
    assert pub.close() == 0


def test_aiortc_publisher_reaches_a_gstreamer_max_bundle_viewer(node: h.NodeProcess, gst) -> None:
    """aiortc publishes VP8 + Opus by WHIP; a webrtcbin WHEP viewer offering max-bundle (audio
    bundle-only) gets both tracks and decodes 5 s of each."""

    async def scenario() -> None:
        pub, _, _ = await mc.publish(node.url, "gstv", video=True, audio=True)
        viewer = gst("view", f"{node.url}/whep/gstv")
        offer = await asyncio.to_thread(viewer.wait_event, "offer", 60)
        assert_bundle_only_offer(offer["sdp"])
        answer = await asyncio.to_thread(viewer.wait_event, "answer", 60)
        assert answer["status"] == 201, answer
        assert_answer_accepts_everything(answer["sdp"])
        for kind in ("video", "audio"):
            assert "a=sendonly" in section(answer["sdp"], kind)
        stats = await asyncio.to_thread(
            viewer.wait_stats, lambda s: s["video"] >= VIDEO_FRAMES and s["audio"] >= AUDIO_FRAMES, 120,
            f"{VIDEO_FRAMES} video and {AUDIO_FRAMES} audio frames from aiortc decoded by webrtcbin")
        assert (stats["width"], stats["height"]) == (320, 240)
        assert viewer.close() == 0
        await pub.pc.close()

    asyncio.run(scenario())


def test_gstreamer_accepts_an_answer_that_rejects_its_data_channel(node: h.NodeProcess, gst) -> None:
    """A rejected m-section (webrtcbin's bundle-only data channel) still carries a=setup, which
    webrtcbin requires of every section; the media sections connect."""
    pub = gst("publish", f"{node.url}/whip/dc", "--datachannel")
    assert "m=application 0 " in pub.wait_event("offer", 60)["sdp"]
    answer = pub.wait_event("answer", 60)["sdp"]
    app = section(answer, "application")
    assert app[0].startswith("m=application 0 "), "drtc does not carry data channels"
    assert "a=setup:passive" in app
    assert_answer_accepts_everything(answer)
    pub.wait_event("applied", 30)
    pub.wait_stats(lambda s: s["connection"] == "connected", 60, "the publisher connected")
    assert pub.close() == 0
