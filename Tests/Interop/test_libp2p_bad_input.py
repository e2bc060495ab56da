"""Bad bytes on a node's libp2p port: each connection is closed with a logged, counted reason,
and the node keeps serving everyone else (checked with a real py-libp2p peer afterwards)."""

from __future__ import annotations

import re
import socket
import struct
import time

import multiaddr
import requests
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr

import drtc_helpers as h
from test_libp2p_interop import py_host, LOOPBACK


def mss(line: str) -> bytes:
    data = (line + "\n").encode()
    return bytes([len(data)]) + data  # lines here are < 128 bytes: one-byte uvarint


def closed_count(node: h.NodeProcess, reason: str) -> int:
    text = requests.get(node.url + "/metrics", timeout=30).text
    m = re.search(r'drtc_libp2p_connections_closed_total\{reason="%s"\} (\d+)' % reason, text)
    return int(m.group(1)) if m else 0


def send_and_wait_close(port: int, payload: bytes) -> bytes:
    """Sends `payload`, then reads until the node closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        received = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return received
            received += chunk


def wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_garbage_and_broken_noise_are_refused_and_counted(node_factory):
    node = node_factory.start()
    addr = node.health()["multiaddrs"][0]
    port = int(addr.split("/tcp/")[1].split("/")[0])

    # 1. An HTTP request instead of multistream-select.
    send_and_wait_close(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wait_for(lambda: closed_count(node, "multistream") >= 1)

    # 2. Correct negotiation of /noise, then a Noise message 1 that is not 32 bytes of key.
    reply = send_and_wait_close(port, mss("/multistream/1.0.0") + mss("/noise") + struct.pack(">H", 5) + b"hello")
    assert mss("/noise") in reply  # the node did agree on /noise before refusing the handshake
    assert wait_for(lambda: closed_count(node, "noise") >= 1)

    # 3. A frame header promising 65535 bytes, then the client goes away (truncated frame).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(mss("/multistream/1.0.0") + mss("/noise") + struct.pack(">H", 65535) + b"x" * 100)

    # The node's stderr names each reason in one line.
    log = node.log_path.read_text()
    assert "reason=multistream" in log and "reason=noise" in log

    # 4. The node still serves a real peer.
    async def main():
        host = py_host()
        async with host.run([LOOPBACK]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
            await host.connect(info)
            assert info.peer_id in host.get_network().connections
            # While the py peer is connected, the node counts it.
            assert await trio.to_thread.run_sync(lambda: wait_for(lambda: node.health()["peers"] >= 1))

    trio.run(main)
