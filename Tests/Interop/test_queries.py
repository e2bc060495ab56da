"""/getMediaNodes against a reference ranking computed in Python from the documented rule:
with a position, by 50 km distance band, then load headroom (descending), then distance, then
nodeId; without one, by headroom, then nodeId. Run before and after records move, leave and
arrive (the node's spatial index answers changed records from a side set and rebuilds it once
enough changed; both paths are exercised)."""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import drtc_helpers as h

REGION = "NAM"  # the node itself is EU, so the reference covers exactly the test records
CENTERS = [(40.7128, -74.0060), (34.0522, -118.2437), (41.8781, -87.6298), (89.5, 0.0), (0.0, 179.9)]
CPU_LEVELS = [0, 250, 500, 750, 1000]
BAND_KM = 50.0


def unit(lat: float, lon: float) -> tuple[float, float, float]:
    la, lo = lat * math.pi / 180, lon * math.pi / 180
    return (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))


def km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Same formula as the node: chord between unit vectors, then arc length."""
    ua, ub = unit(*a), unit(*b)
    chord = math.sqrt(sum((x - y) ** 2 for x, y in zip(ua, ub)))
    return 2 * math.asin(min(1.0, chord / 2)) * h.EARTH_RADIUS_KM


class Model:
    """What the node should hold: nodeId -> (geo or None, cpu_permille, live)."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[tuple[float, float] | None, int, bool]] = {}

    @staticmethod
    def headroom(cpu: int) -> float:
        return max(0.0, 1 - min(cpu / 1000, 1.0))

    def ranking(self, near: tuple[float, float] | None, limit: int) -> list[tuple[str, float | None]]:
        live = [(nid, geo, cpu) for nid, (geo, cpu, alive) in self.nodes.items() if alive]
        if near is None:
            ordered = sorted(live, key=lambda n: (-self.headroom(n[2]), h.b58decode(n[0])))
            return [(nid, None) for nid, _, _ in ordered[:limit]]
        ranked = []
        for nid, geo, cpu in live:
            if geo is None:
                continue
            km = km_between(near, geo)
            ranked.append((math.floor(km / BAND_KM), -self.headroom(cpu), km, h.b58decode(nid), nid))
        ranked.sort()
        return [(r[4], r[2]) for r in ranked[:limit]]


def submit_all(node: h.NodeProcess, bodies: list[bytes]) -> None:
    def one(body: bytes) -> None:
        r = requests.post(node.url + "/register", data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        assert r.status_code == 200 and r.json()["outcome"] == "accepted", r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, bodies))


def check_queries(node: h.NodeProcess, model: Model, rng: random.Random, rounds: int) -> None:
    session = requests.Session()
    probes = [None, *CENTERS, (40.0, -74.0), (-45.0, 170.0)] + [
        (rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(rounds)]
    for near in probes:
        for limit in (1, 3, 10, 37, 1000):
            params = {"region": REGION, "limit": limit}
            if near is not None:
                params |= {"lat": near[0], "lon": near[1]}
            r = session.get(node.url + "/getMediaNodes", params=params, timeout=10)
            assert r.status_code == 200, r.text
            got = [(n["nodeId"], n.get("distanceKm")) for n in r.json()["nodes"]]
            want = model.ranking(near, limit)
            assert [g[0] for g in got] == [w[0] for w in want], f"near={near} limit={limit}"
            for (_, got_km), (_, want_km) in zip(got, want):
                if want_km is None:
                    assert got_km is None
                else:
                    assert got_km == pytest.approx(want_km, abs=0.0006)


def test_ranking_matches_reference_through_changes(node: h.NodeProcess) -> None:
    rng = random.Random(20261121)
    model = Model()
    idents = [h.Identity.from_seed(70_000 + i) for i in range(300)]
    version = {ident.peer_id: h.now_ms() - 60_000 for ident in idents}

    def record_for(ident: h.Identity, geo, cpu, status=h.NODE_STATUS_ACTIVE) -> bytes:
        version[ident.peer_id] += 1
        return h.signed(ident, region=REGION, geo=geo, cpu_permille=cpu, wall_ms=version[ident.peer_id], status=status)

    def random_geo():
        if rng.random() < 0.1:
            return None
        c = rng.choice(CENTERS)
        lat = max(-90.0, min(90.0, c[0] + rng.uniform(-1.5, 1.5)))
        lon = c[1] + rng.uniform(-1.5, 1.5)
        lon = (lon + 180) % 360 - 180  # wraps across the antimeridian
        return (lat, lon)

    bodies = []
    for ident in idents:
        geo, cpu = random_geo(), rng.choice(CPU_LEVELS)
        model.nodes[ident.peer_id] = (geo, cpu, True)
        bodies.append(record_for(ident, geo, cpu))
    submit_all(node, bodies)
    check_queries(node, model, rng, rounds=5)

    # A few changes (answered from the changed set), then many (forcing a rebuild).
    for batch in (20, 120):
        bodies = []
        for ident in rng.sample(idents, batch):
            action = rng.random()
            geo, cpu, _ = model.nodes[ident.peer_id]
            if action < 0.2:
                model.nodes[ident.peer_id] = (geo, cpu, False)
                bodies.append(record_for(ident, geo, cpu, status=h.NODE_STATUS_LEAVING))
            else:
                geo, cpu = random_geo(), rng.choice(CPU_LEVELS)
                model.nodes[ident.peer_id] = (geo, cpu, True)
                bodies.append(record_for(ident, geo, cpu))
        submit_all(node, bodies)
        check_queries(node, model, rng, rounds=5)

    live = sum(1 for _, _, alive in model.nodes.values() if alive)
    assert node.health()["records"] == live + 1


def test_default_limit_and_region_filter(node: h.NodeProcess) -> None:
    bodies = [h.signed(h.Identity.from_seed(80_000 + i), region=h.REGIONS[i % 6], geo=(i * 0.01, i * 0.01))
              for i in range(36)]
    submit_all(node, bodies)
    assert len(node.get("/getMediaNodes").json()["nodes"]) == 10
    assert len(node.get("/getMediaNodes", lat=0, lon=0).json()["nodes"]) == 10
    for region in h.REGIONS:
        nodes = node.get("/getMediaNodes", region=region, limit=1000).json()["nodes"]
        assert {n["region"] for n in nodes} == {region}
        assert len(nodes) == 6 + (1 if region == "EU" else 0)
