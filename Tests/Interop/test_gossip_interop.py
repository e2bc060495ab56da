"""Gossipsub interop with py-libp2p 0.8.1 (Tests/Interop/py_gossip_peer.py: heartbeat 1 s,
adaptive gossip off, strict signing): a py peer joins a 5-node drtc mesh, subscribes to
drtc/registry/1, receives drtc's records and verifies them with Specs/registry.proto; a
message it publishes that is not a valid record is rejected by the drtc node it is connected
to and reaches no one else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import drtc_helpers as h
from conftest import NodeFactory

TOPIC = "drtc/registry/1"
PEER_SCRIPT = Path(__file__).with_name("py_gossip_peer.py")


class PyPeer:
    """A py_gossip_peer.py process; its JSON events are collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(PEER_SCRIPT), "--topic", TOPIC, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            if event.get("event") in ("ready", "error", "done"):
                self.ready.set()

    def wait_ready(self, timeout: float = 30) -> dict:
        assert self.ready.wait(timeout), "py peer never became ready"
        first = next(e for e in self.events if e["event"] in ("ready", "error", "done"))
        assert first["event"] == "ready", f"py peer failed: {first} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        return first

    def messages(self) -> list[dict]:
        return [e for e in self.events if e["event"] == "message"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory, registry_pb2) -> Iterator[list[h.NodeProcess]]:
    factory = NodeFactory(tmp_path_factory.mktemp("gossip"))
    args = ["--refresh-interval", "2", "--ttl", "30"]
    try:
        seed = factory.start(extra=args)
        bootstrap = ["--bootstrap", seed.health()["multiaddrs"][0]]
        for _ in range(4):
            factory.start(extra=args + bootstrap)
        h.wait_for("the 5-node mesh converged", lambda: all(n.health()["records"] == 5 for n in factory.nodes), timeout=120)
        yield factory.nodes
    finally:
        factory.cleanup()


def rejected(node: h.NodeProcess, reason: str) -> float:
    return h.parse_metric(node.metrics(), "drtc_gossip_rejected_total", {"reason": reason})


def test_py_libp2p_peer_receives_and_verifies_drtc_records(five: list[h.NodeProcess]) -> None:
    addrs = [five[0].health()["multiaddrs"][0], five[3].health()["multiaddrs"][0]]
    peer = PyPeer(*sum((["--connect", a] for a in addrs), []), "--duration", "300")
    owners: set[str] = set()

    def every_owner_seen() -> bool:
        for m in peer.messages():
            record = h.verify_signed_record(bytes.fromhex(m["data"]))  # raises unless genuine
            owners.add(record.node_id)
        return owners == {n.peer_id for n in five}

    def in_mesh() -> bool:
        meshes = [e for e in peer.events if e["event"] == "mesh"]
        return bool(meshes) and bool(set(meshes[-1]["peers"]) & {five[0].peer_id, five[3].peer_id})

    try:
        ready = peer.wait_ready()
        # py negotiated the newest protocol drtc offers.
        assert set(ready["peers"].values()) == {"/meshsub/1.2.0"}, ready
        # Every drtc node refreshes every 2 s: records of all five reach the py peer.
        h.wait_for("records from all five drtc nodes at the py peer", every_owner_seen, timeout=120,
                   last_seen=lambda: f"{len(owners)} of 5 owners")
        # The py peer joined the drtc nodes' mesh.
        h.wait_for("the py peer in a drtc node's mesh", in_mesh, timeout=120)
    finally:
        peer.stop()


def test_invalid_record_from_py_is_rejected_and_not_forwarded(five: list[h.NodeProcess]) -> None:
    listener = PyPeer("--connect", five[4].health()["multiaddrs"][0], "--duration", "10")
    try:
        listener.wait_ready()
        garbage = b"this is not a SignedMediaNodeRecord".hex()
        before = rejected(five[1], "record_malformed")
        publisher = PyPeer("--connect", five[1].health()["multiaddrs"][0], "--publish-hex", garbage,
                           "--publish-after", "2", "--duration", "5")
        try:
            publisher.wait_ready()
            publisher.proc.wait(timeout=30)
            published = [e for e in publisher.events if e["event"] == "published"]
            assert published, publisher.events
        finally:
            publisher.stop()
        h.wait_for("drtc counting the invalid record", lambda: rejected(five[1], "record_malformed") > before, timeout=60)
        listener.proc.wait(timeout=30)
    finally:
        listener.stop()
    # Rejected messages are never forwarded: the other py peer saw drtc records only.
    data = {m["data"] for m in listener.messages()}
    assert garbage not in data
    assert data, "the listener received nothing at all"
    for other in (five[0], five[2], five[3], five[4]):
        assert rejected(other, "record_malformed") == 0


def test_forged_and_replayed_records_graylist_the_sender_and_honest_traffic_flows(five: list[h.NodeProcess]) -> None:
    """Valid pubsub signatures around bad records: a record signed by another key than its
    node_id's (forged), a genuine record past its own TTL (replayed), and a truncated one. Each
    is rejected and counted; after three the py peer is graylisted and even its valid record
    is ignored; the drtc mesh keeps exchanging records."""
    victim = h.Identity.from_seed(777)
    attacker = h.Identity.from_seed(778)
    forged = h.sign_record(h.make_record(victim), attacker)  # victim's node_id, attacker's signature
    replayed = h.signed(victim, wall_ms=h.now_ms() - 120_000, ttl_s=60)  # genuine, but expired
    truncated = forged[:-5]
    honest_after = h.signed(attacker, ttl_s=600)  # valid, but from a graylisted peer
    target = five[2]
    before = {r: rejected(target, r) for r in ("record_bad_signature", "record_replayed", "record_malformed")}
    digest_before = [n.health()["tableDigest"] for n in five]
    # Not subscribed: it publishes through fanout, so the PRUNE its first rejection earns it
    # from the mesh cannot stop the rest.
    peer = PyPeer("--no-subscribe", "--connect", target.health()["multiaddrs"][0], "--publish-after", "2", "--duration", "10",
                  *sum((["--publish-hex", m.hex()] for m in (forged, replayed, truncated, honest_after)), []))
    try:
        peer.wait_ready()
        peer.proc.wait(timeout=30)
    finally:
        peer.stop()
    published = [e for e in peer.events if e["event"] == "published"]
    assert len(published) == 4, peer.events

    def counted() -> bool:
        metrics = target.metrics()
        return all(h.parse_metric(metrics, "drtc_gossip_rejected_total", {"reason": r}) == before[r] + 1 for r in before) \
            and h.parse_metric(metrics, "drtc_gossip_ignored_total", {"reason": "graylisted"}) >= 1

    h.wait_for("the rejections and the graylisting counted", counted, timeout=60, last_seen=lambda: target.metrics())
    assert h.parse_metric(target.metrics(), "drtc_gossip_rejected_total", {"reason": "bad_framing"}) == 0
    # Nothing of it reached any table, and the mesh still agrees and refreshes.
    for ident in (victim, attacker):
        assert all(n.get("/nodeById", check=False, id=ident.peer_id).status_code == 404 for n in five)
    # The mesh keeps refreshing: every node gets every node's next versions (the tables move on
    # from where they were before the attack), and nothing else.
    want = {n.peer_id: h.own_version(n) for n in five}
    h.wait_for("every node holding every node's latest record after the attack",
               lambda: not any(h.missing_versions(n, want, exact=set(want)) for n in five), timeout=120)
    assert {n.health()["tableDigest"] for n in five}.isdisjoint(digest_before)
