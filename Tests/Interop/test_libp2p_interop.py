"""drtc speaks libp2p with py-libp2p 0.8.1: TCP + multistream-select + Noise + Yamux, Identify, Ping.

py-libp2p runs on trio; its defaults are not a spec peer, so it gets Noise only (sec_opt) and
Yamux only (muxer_opt). drtc's side is either the real `drtc node` (Identify, Ping, its peer
list) or `drtc-p2p-probe`, a test peer built from the same Libp2pNIO host with echo / sha256 /
whoami test protocols (for concurrent streams and bulk transfer, which a node does not serve).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import multiaddr
import pytest
import requests
import trio
from libp2p import generate_new_ed25519_identity, new_host
from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
from libp2p.host.ping import PingService
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE, Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX, Yamux

import drtc_helpers as h

PROBE_BIN = Path(os.environ.get("DRTC_PROBE_BIN", str(h.DRTC_BIN.parent / "drtc-p2p-probe")))
ECHO, SHA, WHOAMI = "/drtc-test/echo/1.0.0", "/drtc-test/sha256/1.0.0", "/drtc-test/whoami/1.0.0"
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def py_host():
    key_pair = generate_new_ed25519_identity()
    noise = NoiseTransport(key_pair, noise_privkey=x25519_key_pair().private_key)
    return new_host(key_pair=key_pair, sec_opt={NOISE: noise}, muxer_opt={YAMUX: Yamux})


async def read_all(stream, limit: int) -> bytes:
    """Reads until the remote half-closes (py-libp2p signals that with StreamEOF)."""
    out = b""
    while True:
        try:
            chunk = await stream.read(65536)
        except StreamEOF:
            return out
        if not chunk:
            return out
        out += chunk
        assert len(out) <= limit


def serve_test_protocols(host) -> None:
    async def echo(stream):
        try:
            while True:
                data = await stream.read(65536)
                if not data:
                    break
                await stream.write(data)
        except StreamEOF:
            pass
        await stream.close()

    async def sha(stream):
        digest = hashlib.sha256()
        try:
            while True:
                data = await stream.read(65536)
                if not data:
                    break
                digest.update(data)
        except StreamEOF:
            pass
        await stream.write(digest.digest())
        await stream.close()

    async def whoami(stream):
        await stream.write(str(stream.muxed_conn.peer_id).encode())
        await stream.close()

    host.set_stream_handler(ECHO, echo)
    host.set_stream_handler(SHA, sha)
    host.set_stream_handler(WHOAMI, whoami)


def run_probe_dial(addr: str, *extra: str) -> tuple[int, dict]:
    proc = subprocess.run([str(PROBE_BIN), "dial", addr, *extra], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"probe printed no result; stderr:\n{proc.stderr}"
    return proc.returncode, json.loads(lines[-1])


async def run_probe_dial_async(addr: str, *extra: str) -> tuple[int, dict]:
    return await trio.to_thread.run_sync(lambda: run_probe_dial(addr, *extra))


class ProbeListener:
    """`drtc-p2p-probe listen` in the background; it serves until its stdin closes."""

    def __enter__(self):
        self.proc = subprocess.Popen([str(PROBE_BIN), "listen", "/ip4/127.0.0.1/tcp/0"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.peer_id, self.addr = info["peerId"], info["addrs"][0]
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_py_dials_drtc_node_identify_and_ping(node_factory):
    node = node_factory.start()
    health = node.health()
    drtc_addr = health["multiaddrs"][0]

    async def main():
        host = py_host()
        async with host.run([LOOPBACK]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(drtc_addr))
            await host.connect(info)
            # Noise authenticated the node as the PeerID it announces.
            assert str(info.peer_id) == health["peerId"]
            assert info.peer_id in host.get_network().connections

            stream = await host.new_stream(info.peer_id, ["/ipfs/id/1.0.0"])
            raw = await read_all(stream, 65536)
            length, offset = 0, 0
            for shift in range(0, 64, 7):  # uvarint length prefix
                b = raw[offset]
                offset += 1
                length |= (b & 0x7F) << shift
                if b < 0x80:
                    break
            ident = Identify()
            ident.ParseFromString(raw[offset:offset + length])
            assert ident.agent_version == "drtc/0.1.0"
            assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/id/push/1.0.0"} <= set(ident.protocols)
            announced = {str(multiaddr.Multiaddr(a)) for a in ident.listen_addrs}
            assert announced == {drtc_addr.rsplit("/p2p/", 1)[0]}
            observed = multiaddr.Multiaddr(ident.observed_addr)
            assert str(observed).startswith("/ip4/127.0.0.1/tcp/")

            rtts = await PingService(host).ping(info.peer_id, ping_amt=3)
            assert len(rtts) == 3 and all(r < 1_000_000 for r in rtts)  # microseconds

            # The node sees py's true PeerID.
            peers = (await trio.to_thread.run_sync(lambda: requests.get(node.url + "/health", timeout=5))).json()
            assert peers["peers"] == 1
            return str(host.get_id())

    trio.run(main)


def test_py_dials_drtc_streams_and_bulk_transfer():
    async def main():
        with ProbeListener() as probe:
            host = py_host()
            async with host.run([LOOPBACK]):
                info = info_from_p2p_addr(multiaddr.Multiaddr(probe.addr))
                await host.connect(info)
                assert str(info.peer_id) == probe.peer_id

                who = await host.new_stream(info.peer_id, [WHOAMI])
                assert (await read_all(who, 200)).decode() == str(host.get_id())

                ok = 0

                async def one(i: int):
                    nonlocal ok
                    s = await host.new_stream(info.peer_id, [ECHO])
                    message = f"py stream {i} ".encode() + os.urandom(64)
                    await s.write(message)
                    await s.close()  # half-close: drtc echoes, then closes
                    if await read_all(s, 10_000) == message:
                        ok += 1

                async with trio.open_nursery() as nursery:
                    for i in range(100):
                        nursery.start_soon(one, i)
                assert ok == 100

                payload = os.urandom(16 << 20)
                s = await host.new_stream(info.peer_id, [SHA])
                for offset in range(0, len(payload), 65536):
                    await s.write(payload[offset:offset + 65536])
                await s.close()
                assert await read_all(s, 64) == hashlib.sha256(payload).digest()

    trio.run(main)


def test_drtc_dials_py_streams_identify_ping_bulk():
    async def main():
        host = py_host()
        serve_test_protocols(host)
        async with host.run([LOOPBACK]):
            addr = f"{host.get_addrs()[0]}"
            code, result = await run_probe_dial_async(addr, "--streams", "100", "--bytes", str(16 << 20))
            assert code == 0, result
            assert result["peerId"] == str(host.get_id())          # drtc authenticated py
            assert result["whoami"] in {str(p) for p in host.get_network().connections}  # py saw drtc's id
            assert "/ipfs/ping/1.0.0" in result["protocols"]        # py's Identify, parsed by drtc
            assert result["pingMs"] > 0                              # drtc's ping answered by py
            assert result["streamsEchoed"] == 100
            assert result["sha256Match"] is True

    trio.run(main)


def test_drtc_dialing_py_under_wrong_peer_id_fails_clearly():
    async def main():
        host = py_host()
        async with host.run([LOOPBACK]):
            real = str(host.get_id())
            impostor = str(ID.from_pubkey(generate_new_ed25519_identity().public_key))
            addr = str(host.get_addrs()[0]).replace(real, impostor)
            code, result = await run_probe_dial_async(addr, "--streams", "1", "--bytes", "1")
            assert code == 1
            assert result["ok"] is False
            assert real in result["error"] and impostor in result["error"], result["error"]

    trio.run(main)
