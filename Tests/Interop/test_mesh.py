"""The registry mesh with real processes on loopback.

Two meshes, because they answer different questions:

- A *busy* mesh of 20 `drtc node`s bootstrapped from one seed, with short liveness settings
  (refresh 2 s, TTL 6 s): about ten record versions per second are always in flight, as on a
  real network. Its tests assert what users rely on and what stays true once reached: every
  node holds, for every live peer, a version at least as new as one that peer published after
  the event under test; a new record or an update reaches everyone; a kill -9'd node expires
  everywhere after its TTL (never before); a graceful leave is seen everywhere long before any
  TTL could explain it. They never ask twenty nodes whether their tables are equal at one
  instant: with refreshes in flight, that is a race a busy machine loses.
- A *quiet* mesh of 10 nodes whose records do not change unless the test changes them
  (refresh 600 s): there, tables stop changing once gossip and sync are done, so "every
  `tableDigest` is equal" is a stable property and is asserted as such, before a partition,
  on each side of it, and after it heals.

Both use a 5 s anti-entropy and exploration interval and the loopback-only admin API that the
partition test uses as a connection gater.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
import requests

import drtc_helpers as h
from conftest import NodeFactory

N = 20
REFRESH_S = 2
TTL_S = 6
COMMON_ARGS = ["--sync-interval", "5", "--admin-api", "true"]
BUSY_ARGS = ["--refresh-interval", str(REFRESH_S), "--ttl", str(TTL_S), *COMMON_ARGS]
QUIET_N = 10
QUIET_ARGS = ["--refresh-interval", "600", "--ttl", "1800", *COMMON_ARGS]
# Bounds are generous on purpose: CI is a busy 2-core machine. They bound a failure, they do
# not measure speed (the gossip-mesh benchmark and the simulator do that).
CONVERGE_S = 120

_POOL = ThreadPoolExecutor(max_workers=max(N, QUIET_N) + 1)


def pmap(fn, nodes: list[h.NodeProcess]) -> list:
    return list(_POOL.map(fn, nodes))


def start_mesh(factory: NodeFactory, n: int, args: list[str]) -> list[h.NodeProcess]:
    seed = factory.start(region=h.REGIONS[0], extra=args)
    bootstrap = ["--bootstrap", seed.health()["multiaddrs"][0]]
    for i in range(1, n):
        factory.start(region=h.REGIONS[i % len(h.REGIONS)], extra=args + bootstrap)
    return list(factory.nodes)


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory, registry_pb2) -> Iterator[NodeFactory]:
    f = NodeFactory(tmp_path_factory.mktemp("mesh"))
    try:
        yield f
    finally:
        f.cleanup()


@pytest.fixture(scope="module")
def mesh(factory: NodeFactory) -> list[h.NodeProcess]:
    return start_mesh(factory, N, BUSY_ARGS)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory, registry_pb2) -> Iterator[list[h.NodeProcess]]:
    f = NodeFactory(tmp_path_factory.mktemp("quiet"))
    try:
        yield start_mesh(f, QUIET_N, QUIET_ARGS)
    finally:
        f.cleanup()


def live(nodes: list[h.NodeProcess]) -> list[h.NodeProcess]:
    return [n for n in nodes if n.alive()]


def has_record(node: h.NodeProcess, peer_id: str) -> bool:
    return node.get("/nodeById", check=False, id=peer_id).status_code == 200


class CaughtUp:
    """"Every node holds every wanted peer at least at the wanted version", polled; remembers
    who lagged for the timeout message."""

    def __init__(self, nodes: list[h.NodeProcess], want: dict[str, h.Version], exact: set[str] | None = None) -> None:
        self.nodes, self.want, self.exact = nodes, want, exact
        self.lagging: dict[str, object] = {}

    def __call__(self) -> bool:
        gaps = pmap(lambda n: h.missing_versions(n, self.want, self.exact), self.nodes)
        self.lagging = {n.peer_id[-6:]: g for n, g in zip(self.nodes, gaps) if g}
        return not self.lagging

    def wait(self, what: str, timeout: float = CONVERGE_S) -> float:
        return h.wait_for(what, self, timeout, interval=0.5, last_seen=lambda: self.lagging)


def fresh_versions(nodes: list[h.NodeProcess]) -> dict[str, h.Version]:
    """Each node's own record version, read now: anything published before this moment is
    older or equal, so holding these versions means being caught up with "now"."""
    return dict(zip((n.peer_id for n in nodes), pmap(h.own_version, nodes)))


# --------------------------------------------------------------------------------------------
# The busy mesh.


def test_twenty_nodes_converge_from_one_seed(mesh: list[h.NodeProcess]) -> None:
    want = fresh_versions(mesh)
    took = CaughtUp(mesh, want, exact=set(want)).wait("every node holding every node's record at least as new as at the start")
    print(f"caught up in {took:.1f}s")
    # Every node keeps 8..12 connections, chosen by itself (not all to the seed).
    h.wait_for("8..12 peers each", lambda: all(8 <= x["peers"] <= 12 for x in pmap(lambda n: n.health(), mesh)),
               timeout=CONVERGE_S, interval=1)
    # The mesh keeps refreshing: later versions of everyone reach everyone too.
    again = fresh_versions(mesh)
    assert all(again[p] >= want[p] for p in want)
    CaughtUp(mesh, again, exact=set(again)).wait("every node holding every node's next refresh")
    metrics = mesh[5].metrics()
    assert h.parse_metric(metrics, "drtc_gossip_mesh_peers", {"topic": "drtc/registry/1"}) >= 4
    assert h.parse_metric(metrics, "drtc_gossip_messages_total", {"kind": "delivered"}) > 0


def test_a_record_update_reaches_all_nodes(mesh: list[h.NodeProcess]) -> None:
    nodes = live(mesh)
    ident = h.Identity.from_seed(4242)
    mesh[7].register(h.signed(ident, region="ASI", ttl_s=600)).raise_for_status()
    h.wait_for("the new record on every node", lambda: all(pmap(lambda n: has_record(n, ident.peer_id), nodes)),
               timeout=CONVERGE_S)
    # A newer version (another region) replaces it everywhere.
    mesh[13].register(h.signed(ident, region="OCE", ttl_s=600, wall_ms=h.now_ms() + 5)).raise_for_status()
    h.wait_for("the update on every node",
               lambda: all(pmap(lambda n: n.get("/nodeById", id=ident.peer_id).json()["region"] == "OCE", nodes)),
               timeout=CONVERGE_S)
    # And the tables hold exactly the live nodes and this record, each at least as new as now.
    want = fresh_versions(nodes)
    want[ident.peer_id] = h.record_version(mesh[13].get("/nodeById", id=ident.peer_id).json())
    CaughtUp(nodes, want, exact=set(want)).wait("every node caught up with every node and the update")


def test_a_killed_node_expires_everywhere_after_its_ttl(mesh: list[h.NodeProcess]) -> None:
    victim = mesh[N - 1]
    victim.kill9()
    killed_at = time.monotonic()
    others = live(mesh)
    h.wait_for("the killed node's record gone everywhere",
               lambda: not any(pmap(lambda n: has_record(n, victim.peer_id), others)), timeout=TTL_S + 60)
    elapsed = time.monotonic() - killed_at
    # Not before its TTL could have run out (it refreshed at most REFRESH_S before the kill).
    # A busy machine only makes this later, never earlier.
    assert elapsed >= TTL_S - REFRESH_S - 1, f"record vanished after {elapsed:.1f}s, before its {TTL_S}s TTL"
    want = fresh_versions(others)
    registered = h.Identity.from_seed(4242).peer_id  # by the update test, when it ran before
    exact = set(want) | ({registered} if has_record(others[0], registered) else set())
    CaughtUp(others, want, exact=exact).wait("every survivor caught up, without the killed node")


def test_a_graceful_leave_is_seen_long_before_any_ttl(factory: NodeFactory, mesh: list[h.NodeProcess]) -> None:
    """The leaver promises a 30-minute TTL, so its record can vanish within the bound only
    through the signed tombstone it gossips on SIGTERM."""
    nodes = live(mesh)
    leaver = factory.start(region="SAM", extra=["--refresh-interval", "600", "--ttl", "1800", *COMMON_ARGS,
                                                "--bootstrap", nodes[0].health()["multiaddrs"][0]])
    h.wait_for("the leaver's record everywhere", lambda: all(pmap(lambda n: has_record(n, leaver.peer_id), nodes)),
               timeout=CONVERGE_S)
    assert leaver.terminate() == 0
    took = h.wait_for("the tombstone everywhere", lambda: not any(pmap(lambda n: has_record(n, leaver.peer_id), nodes)),
                      timeout=CONVERGE_S)
    print(f"tombstone everywhere after {took:.1f}s")
    r = nodes[3].get("/nodeById", check=False, id=leaver.peer_id)
    assert r.status_code == 404 and r.json()["code"] == "not_live", r.text


# --------------------------------------------------------------------------------------------
# The quiet mesh.


def digests(nodes: list[h.NodeProcess]) -> list[str]:
    return pmap(lambda n: n.health()["tableDigest"], nodes)


class OneDigest:
    """"All these nodes report one tableDigest", polled; remembers the last digests seen."""

    def __init__(self, nodes: list[h.NodeProcess]) -> None:
        self.nodes, self.seen = nodes, []

    def __call__(self) -> bool:
        self.seen = digests(self.nodes)
        return len(set(self.seen)) == 1

    def wait(self, what: str) -> float:
        return h.wait_for(what, self, CONVERGE_S, interval=0.5, last_seen=lambda: sorted(d[:12] for d in self.seen))


def test_quiet_mesh_ends_with_equal_digests(quiet: list[h.NodeProcess]) -> None:
    want = fresh_versions(quiet)
    CaughtUp(quiet, want, exact=set(want)).wait("every quiet node holding every quiet node's record")
    # Records no longer change, so equal tables must show as equal digests, and stay so.
    OneDigest(quiet).wait("one tableDigest on all quiet nodes")
    assert all(x["records"] == QUIET_N for x in pmap(lambda n: n.health(), quiet))


def test_partition_then_heal_ends_with_identical_tables(quiet: list[h.NodeProcess]) -> None:
    nodes = live(quiet)
    half_a, half_b = nodes[: len(nodes) // 2], nodes[len(nodes) // 2:]

    def gate(action: str, group: list[h.NodeProcess], others: list[h.NodeProcess]) -> None:
        for n in group:
            for o in others:
                r = requests.post(n.url + f"/admin/{action}", params={"peer": o.peer_id}, timeout=10)
                assert r.status_code == 204, r.text

    gate("deny", half_a, half_b)
    gate("deny", half_b, half_a)

    def cut() -> bool:
        return all(x["peers"] <= len(half_a) - 1 for x in pmap(lambda n: n.health(), half_a)) and \
            all(x["peers"] <= len(half_b) - 1 for x in pmap(lambda n: n.health(), half_b))

    h.wait_for("no links across the cut", cut, timeout=CONVERGE_S, interval=1)
    # Each side changes on its own while cut.
    ida, idb = h.Identity.from_seed(5001), h.Identity.from_seed(5002)
    half_a[1].register(h.signed(ida, ttl_s=600)).raise_for_status()
    half_b[1].register(h.signed(idb, ttl_s=600)).raise_for_status()
    h.wait_for("A's record on A", lambda: all(pmap(lambda n: has_record(n, ida.peer_id), half_a)), timeout=CONVERGE_S)
    h.wait_for("B's record on B", lambda: all(pmap(lambda n: has_record(n, idb.peer_id), half_b)), timeout=CONVERGE_S)
    assert not any(pmap(lambda n: has_record(n, ida.peer_id), half_b)), "a record crossed the cut"
    assert not any(pmap(lambda n: has_record(n, idb.peer_id), half_a)), "a record crossed the cut"
    # Two stable tables, one per side.
    side_a, side_b = OneDigest(half_a), OneDigest(half_b)
    h.wait_for("one table per side during the partition",
               lambda: side_a() and side_b() and side_a.seen[0] != side_b.seen[0], timeout=CONVERGE_S,
               last_seen=lambda: (side_a.seen, side_b.seen))

    gate("allow", half_a, half_b)
    gate("allow", half_b, half_a)
    took = OneDigest(nodes).wait("one table after healing")
    print(f"healed in {took:.1f}s")
    assert all(pmap(lambda n: has_record(n, ida.peer_id) and has_record(n, idb.peer_id), nodes))
    assert all(x["records"] == len(nodes) + 2 for x in pmap(lambda n: n.health(), nodes))


def test_admin_api_validates_its_input(quiet: list[h.NodeProcess]) -> None:
    n = live(quiet)[0]
    r = requests.post(n.url + "/admin/deny", params={"peer": "not-a-peer"}, timeout=10)
    assert r.status_code == 400 and "peer" in r.json()["error"]
    r = requests.post(n.url + "/admin/deny", timeout=10)
    assert r.status_code == 400
