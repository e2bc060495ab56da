"""Writes real aiortc 1.16.0 offers to Fixtures/sdp/aiortc-*.sdp.

Run from the package root:  .venv/bin/python scripts/sdp-fixtures/make-aiortc-offers.py
Each offer is the localDescription after ICE gathering (aiortc gathers inside
setLocalDescription), so it carries host candidates and a=end-of-candidates.
"""
import asyncio
import pathlib

from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

OUT = pathlib.Path(__file__).resolve().parents[2] / "Fixtures" / "sdp"


async def offer(name, build):
    pc = RTCPeerConnection()
    build(pc)
    await pc.setLocalDescription(await pc.createOffer())
    OUT.mkdir(exist_ok=True)
    (OUT / f"aiortc-{name}.sdp").write_text(pc.localDescription.sdp)
    await pc.close()


async def main():
    # A publisher (WHIP): video only, audio only, and both.
    await offer("video-sendonly", lambda pc: pc.addTransceiver(VideoStreamTrack(), direction="sendonly"))
    await offer("audio-sendonly", lambda pc: pc.addTransceiver(AudioStreamTrack(), direction="sendonly"))

    def av(pc):
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await offer("audio-video-sendonly", av)

    # A viewer (WHEP): receive video and audio.
    def viewer(pc):
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
    await offer("viewer-recvonly", viewer)


asyncio.run(main())
