"""WHIP/WHEP signalling errors and hostile UDP traffic against a live media session."""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import struct

import requests

import drtc_helpers as h
import media_clients as mc
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "Fixtures" / "sdp"


def offer(name: str = "chrome-video-sendonly.sdp") -> str:
    return (FIXTURES / name).read_text()


def without(sdp: str, prefix: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(prefix))


def post(node: h.NodeProcess, path: str, body: str, content_type: str = "application/sdp", **params) -> requests.Response:
    return requests.post(node.url + path, data=body.encode(), headers={"Content-Type": content_type}, params=params or None, timeout=10)


def test_signalling_errors_name_the_problem(module_node: h.NodeProcess) -> None:
    node = module_node
    cases = [
        (without(offer(), "a=fingerprint"), "fingerprint"),
        (without(offer(), "a=ice-ufrag"), "ice-ufrag"),
        (re.sub(r"(VP8|VP9|H264|AV1|rtx|red|ulpfec|flexfec-03)/90000", "X-NONE/90000", offer()), "no codec in common"),
        ("v=0\r\nthis is not sdp\r\n", "line"),
        ("", "empty"),
    ]
    for body, needle in cases:
        r = post(node, "/whip/bad", body)
        assert r.status_code == 400, (needle, r.status_code, r.text)
        assert needle in r.json()["error"], (needle, r.json())
        assert r.json()["code"] == "bad_offer"
    r = post(node, "/whip/bad", offer(), content_type="application/json")
    assert r.status_code == 415 and r.headers["Accept-Post"] == "application/sdp"
    assert post(node, "/whip/bad%20room", offer()).status_code == 400
    assert post(node, "/whep/bad", offer(), rid="!!").status_code == 400
    assert requests.patch(node.url + "/whip/bad/whatever", data=b"a=candidate", headers={"Content-Type": "application/trickle-ice-sdpfrag"}, timeout=30).status_code == 405
    assert requests.delete(node.url + "/whep/bad/nonexistent", timeout=30).status_code == 404
    assert requests.get(node.url + "/whip/bad", timeout=30).status_code == 405
    big = offer() + "a=x-padding:" + "y" * 70_000 + "\r\n"
    assert post(node, "/whip/bad", big).status_code == 413
    # The engine's counters reach /metrics with its next tick: poll, do not race it.
    h.wait_until(lambda: h.parse_metric(node.metrics(), "drtc_media_sessions_total", {"event": "offer_rejected"}) >= 3,
                 30, "the rejected offers counted in drtc_media_sessions_total")


def test_hostile_udp_does_not_disturb_a_live_session(node: h.NodeProcess) -> None:
    """While a publisher streams to a viewer, another socket floods the media port with garbage,
    truncated STUN, STUN with the session's ufrag but a wrong password, fake DTLS records and
    RTP/RTCP. The viewer keeps decoding; every kind is counted; the node stays up."""
    media_port = int(re.search(r"udp=127\.0\.0\.1:(\d+)", node.stderr_text()).group(1))

    async def scenario() -> None:
        pub, track, _ = await mc.publish(node.url, "hostile")
        viewer = await mc.view(node.url, "hostile")
        await mc.wait_for(lambda: viewer.frames["video"] > 10, 60, "first frames")
        ufrag = re.search(r"a=ice-ufrag:(\S+)", viewer.session.answer).group(1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rng = random.Random(5)
        tid = os.urandom(12)
        user = f"{ufrag}:evil".encode()
        attr = struct.pack("!HH", 0x0006, len(user)) + user + b"\0" * (-len(user) % 4)
        bad_mi = struct.pack("!HH", 0x0008, 20) + os.urandom(20)
        wrong_password = struct.pack("!HHI", 0x0001, len(attr) + len(bad_mi), 0x2112A442) + tid + attr + bad_mi
        kinds = [
            lambda: os.urandom(rng.randint(0, 1400)),
            lambda: bytes([0, 1, 0, 80]) + os.urandom(10),                   # truncated STUN
            lambda: wrong_password,
            lambda: bytes([22, 254, 253]) + os.urandom(rng.randint(0, 300)),  # DTLS handshake record junk
            lambda: bytes([0x80, 96]) + os.urandom(rng.randint(0, 1200)),     # RTP from a stranger
            lambda: bytes([0x81, 201]) + os.urandom(rng.randint(0, 200)),     # RTCP from a stranger
        ]
        before = viewer.frames["video"]
        for i in range(6000):
            sock.sendto(kinds[i % len(kinds)](), ("127.0.0.1", media_port))
            if i % 200 == 0:
                await asyncio.sleep(0.01)
        await mc.wait_for(lambda: viewer.frames["video"] - before > 30, 60, "the viewer decoding on after the flood")
        sock.close()
        await viewer.session.pc.close()
        await pub.pc.close()

    asyncio.run(scenario())
    assert node.alive()
    m = node.metrics()
    assert h.parse_metric(m, "drtc_media_dropped_total", {"reason": "stun_rejected"}) >= 1
    assert h.parse_metric(m, "drtc_media_dropped_total", {"reason": "unknown_source"}) >= 100
    assert h.parse_metric(m, "drtc_media_dropped_total", {"reason": "stun_unknown_ufrag"}) >= 1
