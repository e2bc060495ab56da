"""aiortc 1.16.0 against drtc's SFU: WHIP publish, WHEP view, media decoded end to end."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests

import drtc_helpers as h
import media_clients as mc


def run(coro):
    return asyncio.run(coro)


def test_video_reaches_two_viewers(node: h.NodeProcess) -> None:
    """A WHIP publisher's VP8 test pattern is decoded by two WHEP viewers: ≥ 90% of the frames
    sent over 5 s, for each viewer."""

    async def scenario() -> None:
        pub, track, _ = await mc.publish(node.url, "room1")
        viewers = [await mc.view(node.url, "room1") for _ in range(2)]
        await mc.wait_for(lambda: all(v.frames["video"] > 0 for v in viewers), 60, "first decoded frame at both viewers")
        # A window of 150 frames sent (5 s at 30 fps; longer on a busy machine, which only
        # slows the publisher's encoder): each viewer must decode ≥ 90% of them. Frames still
        # in flight when the window closes may arrive afterwards.
        sent0 = track.sent
        got0 = [v.frames["video"] for v in viewers]
        await mc.wait_for(lambda: track.sent - sent0 >= 150, 60, "150 frames sent")
        sent = track.sent - sent0
        for i, (v, g0) in enumerate(zip(viewers, got0)):
            await mc.wait_for(lambda: v.frames["video"] - g0 >= 0.9 * sent, 30,
                              f"viewer {i} decoding 90% of {sent} frames (has {v.frames['video'] - g0})")
        assert all(v.sizes == {(320, 240)} for v in viewers)
        for v in viewers:
            await v.session.pc.close()
        await pub.pc.close()

    run(scenario())
    metrics = node.metrics()
    assert h.parse_metric(metrics, "drtc_media_packets_total", {"kind": "rtp_in"}) > 100
    assert h.parse_metric(metrics, "drtc_media_packets_total", {"kind": "rtp_out"}) > 200


def test_opus_audio_arrives(node: h.NodeProcess) -> None:
    """An Opus track published by aiortc is decoded at a viewer (50 frames/s)."""

    async def scenario() -> None:
        pub, _, audio = await mc.publish(node.url, "talk", video=False, audio=True)
        viewer = await mc.view(node.url, "talk", video=False, audio=True)
        assert "opus/48000/2" in viewer.session.answer.lower()
        await mc.wait_for(lambda: viewer.frames["audio"] > 0, 60, "first audio frame")
        start = viewer.frames["audio"]
        # Audio keeps flowing: 150 more frames (3 s of 20 ms frames).
        await mc.wait_for(lambda: viewer.frames["audio"] - start >= 150, 60, "150 more audio frames")
        await viewer.session.pc.close()
        await pub.pc.close()

    run(scenario())


def test_whip_delete_ends_the_session_and_whep_then_conflicts(node: h.NodeProcess) -> None:
    async def scenario() -> None:
        pub, _, _ = await mc.publish(node.url, "gone")
        loc = pub.location
        assert loc.startswith("/whip/gone/")
        r = requests.delete(node.url + loc, timeout=30)
        assert r.status_code == 200
        assert requests.delete(node.url + loc, timeout=30).status_code == 404
        await pub.pc.close()
        # Nothing is published any more: a viewer gets 409 with Retry-After.
        pc = mc.RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        r = requests.post(node.url + "/whep/gone", data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}, timeout=30)
        assert r.status_code == 409, r.text
        assert r.headers["Retry-After"] == "1"
        assert r.json()["code"] == "nothing_published"
        await pc.close()

    run(scenario())
