"""The registry mesh with real processes on loopback: 20 `drtc node`s bootstrapped from one
seed converge; updates reach everyone; a kill -9'd node expires everywhere after its TTL; a
graceful leave is seen at once; a mesh cut in two halves and healed ends with one table.

The nodes run with short liveness settings (refresh 2 s, TTL 6 s), a 5 s anti-entropy and
exploration interval, and the loopback-only admin API that the partition test uses as a
connection gater.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import pytest
import requests

import drtc_helpers as h
from conftest import NodeFactory

N = 20
REFRESH_S = 2
TTL_S = 6
MESH_ARGS = ["--refresh-interval", str(REFRESH_S), "--ttl", str(TTL_S), "--sync-interval", "5", "--admin-api", "true"]


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> float:
    """Polls until `predicate` holds; returns the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except requests.RequestException:
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}; last seen: {LAST_SEEN}")
        time.sleep(interval)


_POOL = ThreadPoolExecutor(max_workers=N)


def healths(nodes: list[h.NodeProcess]) -> list[dict]:
    """Every node's /health, asked concurrently: refreshes are always in flight (~10 per
    second here), so a snapshot taken one node after another on a loaded machine spans
    several of them and two equal tables look different."""
    return list(_POOL.map(lambda n: n.health(), nodes))


LAST_SEEN: dict[str, object] = {}


def converged(nodes: list[h.NodeProcess], records: int) -> bool:
    hs = healths(nodes)
    # Kept for the timeout message: which nodes disagreed, and how.
    LAST_SEEN["tables"] = sorted((x["tableDigest"][:12], x["records"]) for x in hs)
    return len({x["tableDigest"] for x in hs}) == 1 and all(x["records"] == records for x in hs)


def has_record(node: h.NodeProcess, peer_id: str) -> bool:
    return node.get("/nodeById", check=False, id=peer_id).status_code == 200


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, registry_pb2) -> Iterator[list[h.NodeProcess]]:
    factory = NodeFactory(tmp_path_factory.mktemp("mesh"))
    try:
        seed = factory.start(region=h.REGIONS[0], extra=MESH_ARGS)
        bootstrap = ["--bootstrap", seed.health()["multiaddrs"][0]]
        for i in range(1, N):
            factory.start(region=h.REGIONS[i % len(h.REGIONS)], extra=MESH_ARGS + bootstrap)
        yield factory.nodes
    finally:
        factory.cleanup()


def live(nodes: list[h.NodeProcess]) -> list[h.NodeProcess]:
    return [n for n in nodes if n.alive()]


def test_twenty_nodes_converge_from_one_seed(mesh: list[h.NodeProcess]) -> None:
    took = wait_for("20 equal tables of 20 live records", lambda: converged(mesh, N), timeout=60)
    print(f"converged in {took:.1f}s")
    # Every node keeps 8..12 connections, chosen by itself (not all to the seed).
    wait_for("8..12 peers each", lambda: all(8 <= x["peers"] <= 12 for x in healths(mesh)), timeout=60)
    metrics = mesh[5].metrics()
    assert h.parse_metric(metrics, "drtc_gossip_mesh_peers", {"topic": "drtc/registry/1"}) >= 4
    assert h.parse_metric(metrics, "drtc_gossip_messages_total", {"kind": "delivered"}) > 0


def test_a_record_update_reaches_all_nodes(mesh: list[h.NodeProcess]) -> None:
    nodes = live(mesh)
    ident = h.Identity.from_seed(4242)
    mesh[7].register(h.signed(ident, region="ASI", ttl_s=600)).raise_for_status()
    wait_for("the new record on every node", lambda: all(has_record(n, ident.peer_id) for n in nodes), timeout=10)
    # A newer version (another region) replaces it everywhere.
    mesh[13].register(h.signed(ident, region="OCE", ttl_s=600, wall_ms=h.now_ms() + 5)).raise_for_status()
    wait_for("the update on every node",
             lambda: all(n.get("/nodeById", id=ident.peer_id).json()["region"] == "OCE" for n in nodes), timeout=10)
    total = N + 1
    wait_for("equal tables again", lambda: converged(nodes, total), timeout=20)


def test_a_killed_node_expires_everywhere_after_its_ttl(mesh: list[h.NodeProcess]) -> None:
    victim = mesh[N - 1]
    victim.kill9()
    killed_at = time.monotonic()
    others = live(mesh)
    wait_for("the killed node's record gone everywhere",
             lambda: not any(has_record(n, victim.peer_id) for n in others), timeout=TTL_S + 10)
    elapsed = time.monotonic() - killed_at
    # Not before its TTL could have run out (it refreshed at most REFRESH_S before the kill).
    assert elapsed >= TTL_S - REFRESH_S - 1, f"record vanished after {elapsed:.1f}s, before its {TTL_S}s TTL"
    wait_for("equal tables without it", lambda: converged(others, N), timeout=20)


def test_a_graceful_leave_is_seen_before_the_ttl(mesh: list[h.NodeProcess]) -> None:
    leaver = mesh[N - 2]
    assert leaver.terminate() == 0
    others = live(mesh)
    took = wait_for("the tombstone everywhere", lambda: not any(has_record(n, leaver.peer_id) for n in others), timeout=TTL_S)
    assert took < TTL_S - 1, f"tombstone took {took:.1f}s: it looks like TTL expiry, not gossip"


def test_partition_then_heal_ends_with_identical_tables(mesh: list[h.NodeProcess]) -> None:
    nodes = live(mesh)
    half_a, half_b = nodes[: len(nodes) // 2], nodes[len(nodes) // 2:]

    def gate(action: str, group: list[h.NodeProcess], others: list[h.NodeProcess]) -> None:
        for n in group:
            for o in others:
                r = requests.post(n.url + f"/admin/{action}", params={"peer": o.peer_id}, timeout=10)
                assert r.status_code == 204, r.text

    gate("deny", half_a, half_b)
    gate("deny", half_b, half_a)
    def cut() -> bool:
        counts = [x["peers"] for x in healths(half_a)], [x["peers"] for x in healths(half_b)]
        return all(c <= len(half_a) - 1 for c in counts[0]) and all(c <= len(half_b) - 1 for c in counts[1])

    wait_for("no links across the cut", cut, timeout=10, interval=1)
    # Each side changes on its own while cut.
    ida, idb = h.Identity.from_seed(5001), h.Identity.from_seed(5002)
    half_a[1].register(h.signed(ida, ttl_s=600)).raise_for_status()
    half_b[1].register(h.signed(idb, ttl_s=600)).raise_for_status()
    wait_for("A's record on A", lambda: all(has_record(n, ida.peer_id) for n in half_a), timeout=10)
    wait_for("B's record on B", lambda: all(has_record(n, idb.peer_id) for n in half_b), timeout=10)
    assert not any(has_record(n, ida.peer_id) for n in half_b), "a record crossed the cut"
    assert not any(has_record(n, idb.peer_id) for n in half_a), "a record crossed the cut"
    # Long enough for each side's records to expire on the other side.
    time.sleep(TTL_S + 1)
    # Refreshes are always in flight (9 per second here), so a single snapshot can catch one
    # half-propagated; two stable tables must show within a few polls.
    def two_tables() -> bool:
        a = {x["tableDigest"] for x in healths(half_a)}
        b = {x["tableDigest"] for x in healths(half_b)}
        return len(a) == 1 and len(b) == 1 and a != b

    wait_for("one table per side during the partition", two_tables, timeout=10)

    gate("allow", half_a, half_b)
    gate("allow", half_b, half_a)
    took = wait_for("one table after healing", lambda: converged(nodes, len(nodes) + 3), timeout=60)
    print(f"healed in {took:.1f}s")
    assert all(has_record(n, ida.peer_id) and has_record(n, idb.peer_id) for n in nodes)


def test_admin_api_validates_its_input(mesh: list[h.NodeProcess]) -> None:
    n = live(mesh)[0]
    r = requests.post(n.url + "/admin/deny", params={"peer": "not-a-peer"}, timeout=10)
    assert r.status_code == 400 and "peer" in r.json()["error"]
    r = requests.post(n.url + "/admin/deny", timeout=10)
    assert r.status_code == 400
