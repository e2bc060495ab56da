"""aiortc WHIP publishers and WHEP viewers against a drtc node (all on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field

import aioice.ice
import av
import numpy
import requests
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

# aioice leaves loopback out of its host candidates; these tests run on 127.0.0.1 only.
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"] if use_ipv4 else []


class PatternTrack(VideoStreamTrack):
    """A 320x240 moving test pattern at 30 fps that counts the frames it hands to the encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = numpy.zeros((240, 320, 3), numpy.uint8)
        x = (self.sent * 4) % 320
        image[:, x:x + 16, :] = 255
        image[(self.sent * 2) % 240, :, 1] = 200
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


class CountingAudioTrack(AudioStreamTrack):
    """A 440 Hz tone (Opus would squeeze silence to almost nothing) that counts its 20 ms frames."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        samples = frame.samples
        t = (numpy.arange(samples) + self.sent * samples) / frame.sample_rate
        tone = (numpy.sin(2 * numpy.pi * 440 * t) * 8000).astype(numpy.int16)
        out = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, fractions.Fraction(1, frame.sample_rate)
        self.sent += 1
        return out


@dataclass
class Session:
    pc: RTCPeerConnection
    location: str
    answer: str


async def _negotiate(pc: RTCPeerConnection, url: str, params: dict | None = None, token: str | None = None,
                     retry_conflict: float = 0) -> Session:
    """POSTs the offer (following 307 redirects, as requests does); `token` goes in
    `Authorization: Bearer` (RFC 9725 §4.4); a 409 (nothing published yet) is retried for up to
    `retry_conflict` seconds, as its Retry-After asks."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + retry_conflict
    while True:
        r = await asyncio.to_thread(
            requests.post, url, data=pc.localDescription.sdp.encode(), headers=headers, params=params, timeout=10)
        if r.status_code != 409 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert r.status_code == 201, f"{url}: {r.status_code} {r.text}"
    assert r.headers["Content-Type"].startswith("application/sdp")
    assert r.headers.get("ETag"), "RFC 9725 §4.2: the 201 carries an ETag"
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return Session(pc=pc, location=r.headers["Location"], answer=r.text)


async def publish(base: str, room: str, video: bool = True, audio: bool = False, url: str | None = None,
                  token: str | None = None) -> tuple[Session, PatternTrack | None, CountingAudioTrack | None]:
    """Publishes to `{base}/whip/{room}`, or to `url` (an allocation's) with `token`."""
    pc = RTCPeerConnection()
    vt = PatternTrack() if video else None
    at = CountingAudioTrack() if audio else None
    if vt:
        pc.addTransceiver(vt, direction="sendonly")
    if at:
        pc.addTransceiver(at, direction="sendonly")
    return await _negotiate(pc, url or f"{base}/whip/{room}", token=token), vt, at


@dataclass
class Viewer:
    session: Session
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    first: dict[str, float] = field(default_factory=dict)
    sizes: set = field(default_factory=set)
    tasks: list = field(default_factory=list)


async def view(base: str, room: str, video: bool = True, audio: bool = False, url: str | None = None,
               token: str | None = None, retry_conflict: float = 0) -> Viewer:
    pc = RTCPeerConnection()
    if video:
        pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    holder: dict = {}

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def consume() -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                v = holder["viewer"]
                v.frames[track.kind] += 1
                v.first.setdefault(track.kind, time.monotonic())
                if track.kind == "video":
                    v.sizes.add((frame.width, frame.height))
        holder.setdefault("pending", []).append(asyncio.ensure_future(consume()))

    session = await _negotiate(pc, url or f"{base}/whep/{room}", token=token, retry_conflict=retry_conflict)
    viewer = Viewer(session=session)
    holder["viewer"] = viewer
    viewer.tasks = holder.get("pending", [])
    return viewer


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
