"""Wrong clocks (Specs/registry.md "Clocks"), tried as an operator with a badly set clock
would: real `drtc node` processes under libfaketime (Debian `faketime`), wall clock only
(DONT_FAKE_MONOTONIC=1: NIO's timers keep the real monotonic clock).

libfaketime (Debian 0.9.10) also shifts the deadlines of monotonic timerfds, which Swift's
`Task.sleep` uses through libdispatch; `faketime_timerfd.c`, preloaded before it, keeps those
real (the wall clock stays faked).

A mesh of five nodes with the default liveness settings (refresh 30 s, TTL 90 s): three with
the right time, one 5 minutes ahead, one 5 minutes behind. Without the clock rule the skewed
nodes are invisible — a record stamped 5 minutes in the future is refused, and one stamped
5 minutes in the past has expired on arrival — and they see nobody. With it every node sees
every node and their refreshes, each skewed node reports its offset with the right sign, and a
node 30 minutes ahead (beyond the 10-minute bound) says that it is refused.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

import drtc_helpers as h
from conftest import NodeFactory

FAKETIME = shutil.which("faketime")
SKEW_MS = 5 * 60_000
FAR_MS = 30 * 60_000
# Generous: CI is a busy 2-core machine; a refresh is 30 s.
WAIT_S = 180

_POOL = ThreadPoolExecutor(max_workers=8)


def pmap(fn, nodes: list[h.NodeProcess]) -> list:
    return list(_POOL.map(fn, nodes))


@pytest.fixture(scope="module")
def timerfd_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert FAKETIME, "faketime not found (Debian: apt-get install faketime; `make deps` installs it)"
    compiler = shutil.which("cc") or shutil.which("clang")
    assert compiler, "no C compiler (cc or clang) for faketime_timerfd.c"
    out = tmp_path_factory.mktemp("shim") / "faketime_timerfd.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(Path(__file__).with_name("faketime_timerfd.c"))],
                   check=True, capture_output=True)
    return out


def skewed(offset: str, shim: Path) -> dict:
    """launch_node arguments that run the node with its wall clock `offset` off (faketime's
    advanced format, e.g. '+5m'); its monotonic clock and timers stay real."""
    return {"prefix": [str(FAKETIME), "-m", "-f", offset], "env": {"DONT_FAKE_MONOTONIC": "1", "LD_PRELOAD": str(shim)}}


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory, registry_pb2) -> Iterator[NodeFactory]:
    yield from NodeFactory.scoped(tmp_path_factory.mktemp("skew"))


@pytest.fixture(scope="module")
def five(factory: NodeFactory, timerfd_shim: Path) -> dict[str, h.NodeProcess]:
    seed = factory.start(region="EU")
    bootstrap = ["--bootstrap", seed.health()["multiaddrs"][0]]
    nodes = {"right0": seed}
    nodes["right1"] = factory.start(region="NAM", extra=bootstrap)
    nodes["right2"] = factory.start(region="ASI", extra=bootstrap)
    nodes["ahead"] = factory.start(region="SAM", extra=bootstrap, **skewed("+5m", timerfd_shim))
    nodes["behind"] = factory.start(region="AFR", extra=bootstrap, **skewed("-5m", timerfd_shim))
    return nodes


def live_ids(node: h.NodeProcess) -> set[str]:
    return set(h.table_versions(node))


def test_nodes_minutes_ahead_and_behind_see_each_other_and_their_refreshes(five: dict[str, h.NodeProcess]) -> None:
    nodes = list(five.values())
    everyone = {n.peer_id for n in nodes}
    seen: dict[str, object] = {}

    def all_see_all() -> bool:
        tables = pmap(live_ids, nodes)
        seen.clear()
        seen.update({name: sorted(p[-6:] for p in everyone - t) for name, t in zip(five, tables) if everyone - t})
        return not seen

    h.wait_for("every node holding every node's record live", all_see_all, timeout=WAIT_S, last_seen=lambda: dict(seen))
    # Refreshes too, not only the first announcements: each node publishes a newer version
    # (within one refresh interval), and every node comes to hold those versions.
    first = dict(zip((n.peer_id for n in nodes), pmap(h.own_version, nodes)))
    h.wait_for("every node refreshing its record",
               lambda: all(v > first[n.peer_id] for n, v in zip(nodes, pmap(h.own_version, nodes))), timeout=WAIT_S)
    want = dict(zip((n.peer_id for n in nodes), pmap(h.own_version, nodes)))
    lacking: dict[str, object] = {}

    def caught_up() -> bool:
        gaps = pmap(lambda n: h.missing_versions(n, want, exact=everyone), nodes)
        lacking.clear()
        lacking.update({name: g for name, g in zip(five, gaps) if g})
        return not lacking

    h.wait_for("every node holding every node's refreshed record", caught_up, timeout=WAIT_S, last_seen=lambda: dict(lacking))

    # Each node knows its offset: the skewed ones by about their skew, with its sign.
    health = {name: n.health() for name, n in five.items()}
    for name in ("right0", "right1", "right2"):
        assert abs(health[name]["clockOffsetMs"]) < 2_000, (name, health[name]["clock"])
        assert health[name]["clock"]["status"] == "ok" and health[name]["status"] == "ok", (name, health[name])
    for name, sign in (("ahead", 1), ("behind", -1)):
        offset = health[name]["clockOffsetMs"]
        assert abs(offset - sign * SKEW_MS) < 30_000, (name, health[name]["clock"])
        assert health[name]["clock"]["status"] == "corrected", (name, health[name]["clock"])
        assert health[name]["clock"]["correctionMs"] == offset
        assert health[name]["status"] == "ok", (name, health[name])
        metric = h.parse_metric(five[name].metrics(), "drtc_clock_offset_ms")
        assert abs(metric - sign * SKEW_MS) < 30_000, (name, metric)
    assert "s ahead of the median of its peers' clocks" in five["ahead"].stderr_text()
    assert "s behind the median of its peers' clocks" in five["behind"].stderr_text()


def test_a_node_beyond_the_bound_knows_it_is_refused(factory: NodeFactory, five: dict[str, h.NodeProcess], timerfd_shim: Path) -> None:
    seed = five["right0"]
    far = factory.start(region="OCE", extra=["--bootstrap", seed.health()["multiaddrs"][0]], **skewed("+30m", timerfd_shim))
    last: dict[str, object] = {}

    def says_refused() -> bool:
        x = far.health()
        last.update(x)
        return x["clock"]["status"] == "refused" and x["status"] == "degraded"

    h.wait_for("the node 30 minutes ahead reporting that it is refused", says_refused, timeout=WAIT_S, last_seen=lambda: dict(last))
    assert abs(last["clockOffsetMs"] - FAR_MS) < 60_000, last
    assert last["clock"]["correctionMs"] == 0 and last["clock"]["toleranceMs"] == 600_000
    assert h.parse_metric(far.metrics(), "drtc_clock_refused") == 1
    h.wait_for("the refusal in its log", lambda: "beyond the 600 s the mesh tolerates" in far.stderr_text(), timeout=WAIT_S)

    # And it is refused: its record reaches the others (by sync or gossip) and is counted as
    # coming from the future; none of them lists it.
    def refused_by_the_mesh() -> bool:
        return any(h.parse_metric(m, "drtc_registry_merges_rejected_total", {"reason": "future_timestamp"})
                   + h.parse_metric(m, "drtc_gossip_rejected_total", {"reason": "record_future_timestamp"}) > 0
                   for m in pmap(lambda n: n.metrics(), list(five.values())))

    h.wait_for("a peer refusing the far node's record as future_timestamp", refused_by_the_mesh, timeout=WAIT_S)
    assert not any(far.peer_id in live_ids(n) for n in five.values())
    # The others' clocks are not moved by it.
    assert all(abs(n.health()["clockOffsetMs"]) < 2_000 for name, n in five.items() if name.startswith("right"))
