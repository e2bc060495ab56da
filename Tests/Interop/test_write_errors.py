"""A failed write closes only its own connection (issue 13's audit of the TCP paths): clients
that reset their connection while the node answers them (so the node's writes and reads fail
with EPIPE/ECONNRESET) leave every other connection of the node as it was, on the libp2p port
and on the HTTP API."""

from __future__ import annotations

import http.client
import socket
import struct
import subprocess
import time

import drtc_helpers as h


def poll(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def reset_after(address: tuple[str, int], payload: bytes) -> None:
    """Connects, sends `payload`, and resets the connection (SO_LINGER 0) without reading, with
    a receive buffer too small for the answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(address)
    s.sendall(payload)
    time.sleep(0.01)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def established(port: int) -> int:
    """TCP connections in ESTABLISHED state whose local port is `port` (the node's side)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def tcp_endpoint(multiaddr: str) -> tuple[str, int]:
    parts = multiaddr.split("/")
    return parts[2], int(parts[4])


def test_reset_libp2p_connections_leave_the_mesh_connection_alone(node_factory) -> None:
    a = node_factory.start()
    b = node_factory.start(extra=["--bootstrap", a.health()["multiaddrs"][0]])
    poll(lambda: a.health()["peers"] == 1 and b.health()["peers"] == 1, 60, "a and b to connect")
    # multistream-select 1.0 header and a Noise proposal: the node answers both at once.
    hello = b"\x13/multistream/1.0.0\n\x07/noise\n"
    endpoint = tcp_endpoint(a.health()["multiaddrs"][0])
    for _ in range(50):
        reset_after(endpoint, hello)
    # Every reset connection is closed on the node's side; the mesh connection (b dialled a) is
    # the one left, and neither side saw it close.
    poll(lambda: established(endpoint[1]) == 1, 60, "a to close the 50 reset connections")
    assert "libp2p connection closed" not in b.stderr_text(), b.stderr_text()[-2000:]
    assert a.health()["peers"] == 1 and b.health()["peers"] == 1
    assert a.alive() and b.alive()


def test_reset_http_connections_leave_a_keep_alive_connection_alone(node) -> None:
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    keep = http.client.HTTPConnection(host, int(port), timeout=10)
    keep.request("GET", "/health")
    first = keep.getresponse()
    assert first.status == 200
    first.read()
    local = keep.sock.getsockname()
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 20  # pipelined: twenty answers to write
    for _ in range(50):
        reset_after((host, int(port)), request)
    poll(lambda: established(int(port)) == 1, 60, "the node to close the 50 reset connections")
    # The keep-alive connection is the one left, and it answers again.
    keep.request("GET", "/health")
    again = keep.getresponse()
    assert again.status == 200 and keep.sock.getsockname() == local
    again.read()
    keep.close()
    assert node.alive()
    assert node.health()["status"] == "ok"
