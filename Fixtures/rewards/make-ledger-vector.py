#!/usr/bin/env python3
"""Writes Fixtures/rewards/ledger-vector.json: the inputs of one epoch's reward ledger and the
CSV an implementation independent of the Swift core computes from them (Specs/rewards.md
"Ledger"). RewardsTests reproduces the CSV byte for byte.

Independent means: distances by the haversine formula (the Swift core compares chords on the
unit sphere), neighbourhoods by brute force (the core uses a grid), the percentile rank by
counting (the core by binary search). Positions are chosen far from the radii's edges, so the
two distance methods agree. Standard library only:

    python3 Fixtures/rewards/make-ledger-vector.py > Fixtures/rewards/ledger-vector.json
"""

from __future__ import annotations

import hashlib
import json
import math
import sys

EARTH_RADIUS_KM = 6371.0088

PARAMETERS = {
    "weights": {"availability": 0.35, "history": 0.25, "location": 0.25, "coverage": 0.15},
    "k": 8.0, "rAsym": 1.0, "hMin": 0.4, "locationRadiusKm": 400.0, "coverageRadiusKm": 1000.0,
    "streamBitrateKbps": 700.0, "unmeasuredQuality": 0.0,
}

# Node "keys" are 32-byte Ed25519 public keys given in hex; the PeerID is derived as libp2p does.
NODES = [
    # key seed, position (lat, lon) or None, uptime s, lifetime s, V or None, b MB, s MB, sessions
    (1, (52.52, 13.405), 86000.0, 86400.0, 0.93, 105.0, 1050.0, 2),
    (2, (52.40, 13.06), 43200.0, 86400.0, 0.71, 0.0, 210.0, 0),
    (3, (48.86, 2.35), 7200.0, 7200.0, None, 52.5, 52.5, 1),
    (4, (40.71, -74.01), 80000.0, 90000.0, 0.55, 315.0, 3150.0, 3),
    (5, (35.68, 139.69), 1000.0, 100000.0, 0.2, 0.0, 0.0, 0),
    (6, None, 5000.0, 5000.0, 0.99, 10.5, 10.5, 1),
    (7, (-33.87, 151.21), 0.0, 0.0, None, 0.0, 0.0, 0),
    (8, (50.11, 8.68), 60000.0, 60000.0, 0.88, 21.0, 1050.0, 1),
]
DEMAND = [((52.52, 13.405), 40.0), ((48.86, 2.35), 12.0), ((40.71, -74.01), 30.0), ((35.68, 139.69), 3.0),
          ((50.11, 8.68), 7.0)]
EPOCH = 1_364_000

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def key_of(seed: int) -> bytes:
    return bytes([0xD7]) + bytes(23) + seed.to_bytes(8, "big")


def peer_id(key: bytes) -> str:
    proto = bytes([0x08, 0x01, 0x12, 0x20]) + key  # libp2p PublicKey{Type: Ed25519, Data}
    mh = bytes([0x00, len(proto)]) + proto           # identity multihash (inlined key)
    n = int.from_bytes(mh, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(mh) - len(mh.lstrip(b"\0"))) + out


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rnd(x: float, decimals: int) -> float:
    """Half away from zero, like Swift's Double.rounded()."""
    scale = 10.0 ** decimals
    y = x * scale
    return (math.floor(y + 0.5) if y >= 0 else -math.floor(-y + 0.5)) / scale


def fixed(x: float, decimals: int) -> str:
    scale = 10 ** decimals
    y = x * float(scale)
    units = int(math.floor(y + 0.5)) if y >= 0 else -int(math.floor(-y + 0.5))
    sign = "-" if units < 0 else ""
    units = abs(units)
    return sign + str(units // scale) + ("." + str(units % scale).rjust(decimals, "0") if decimals else "")


def unit_reward(a: float, h: float, l: float, c: float, v: float, p: dict) -> float:
    w = p["weights"]
    s = w["availability"] * a + w["history"] * h + w["location"] * l + w["coverage"] * c
    if s <= 0:
        return 0.0
    return p["rAsym"] / (1 / s + math.exp(-p["k"] * (v - p["rAsym"] / 2)))


def ledger_csv(p: dict) -> str:
    rows = []
    ids = {seed: peer_id(key_of(seed)) for seed, *_ in NODES}
    placed = [n[1] for n in NODES if n[1] is not None]
    supplied = [n[6] for n in NODES]
    demand_near = {}
    for seed, pos, *_ in NODES:
        demand_near[seed] = 0.0 if pos is None else sum(w for q, w in DEMAND if haversine_km(q, pos) <= p["locationRadiusKm"])
    max_demand = max(demand_near.values())
    for seed, pos, up, life, v, b, s, sessions in NODES:
        a = 0.0 if life <= 0 or up <= 0 else min(1.0, up / life)
        le = sum(1 for x in supplied if x <= s)
        eq = sum(1 for x in supplied if x == s)
        h = max(p["hMin"], (le - 0.5 * eq) / len(NODES))
        near = 0 if pos is None else sum(1 for q in placed if haversine_km(q, pos) <= p["coverageRadiusKm"])
        c = 1 / near if near else 0.0
        l_score = demand_near[seed] / max_demand if max_demand > 0 else 0.0
        ra, rh, rl, rc = (rnd(x, 6) for x in (a, h, l_score, c))
        rv = None if v is None else rnd(v, 6)
        r = rnd(unit_reward(ra, rh, rl, rc, p["unmeasuredQuality"] if rv is None else rv, p), 6)
        bb = rnd(b, 3)
        rows.append((ids[seed], [
            str(EPOCH), ids[seed], fixed(ra, 6), fixed(rh, 6), fixed(rl, 6), fixed(rc, 6),
            "" if rv is None else fixed(rv, 6), "false" if rv is None else "true", fixed(r, 6), fixed(bb, 3),
            fixed(rnd(r * bb, 6), 6), str(sessions), fixed(up, 3), fixed(life, 3), fixed(rnd(demand_near[seed], 6), 6), str(near),
        ]))
    rows.sort(key=lambda r: r[0].encode())
    header = ("epoch,nodeId,availability,history,location,coverage,quality,qualityMeasured,unitReward,dataSuppliedMB,"
              "reward,sessions,uptimeSeconds,lifetimeSeconds,demandNearby,nodesNearby")
    return header + "\n" + "".join(",".join(f) + "\n" for _, f in rows)


def main() -> None:
    csv = ledger_csv(PARAMETERS)
    doc = {
        "source": "Fixtures/rewards/make-ledger-vector.py (independent Python implementation of Specs/rewards.md)",
        "parameters": PARAMETERS,
        "epoch": EPOCH,
        "nodes": [
            {"publicKeyHex": key_of(seed).hex(), "nodeId": peer_id(key_of(seed)),
             "latitude": None if pos is None else pos[0], "longitude": None if pos is None else pos[1],
             "uptimeSeconds": up, "lifetimeSeconds": life, "quality": v, "dataSuppliedMB": b,
             "lifetimeDataSuppliedMB": s, "sessions": sessions}
            for seed, pos, up, life, v, b, s, sessions in NODES
        ],
        "demand": [{"latitude": q[0], "longitude": q[1], "participants": w} for q, w in DEMAND],
        "csv": csv,
        "digest": hashlib.sha256(csv.encode()).hexdigest(),
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
