"""Records built and signed in Python (cryptography + protoc-generated code), submitted to a
real node over HTTP, and read back through the query endpoints."""

from __future__ import annotations

import base64
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import drtc_helpers as h
from drtc_helpers import Identity, make_record, sign_record, signed

PARIS = (48.8566, 2.3522)
BERLIN = (52.52, 13.405)
MADRID = (40.4168, -3.7038)
ROME = (41.9028, 12.4964)
OSLO = (59.9139, 10.7522)
CAPE_TOWN = "-33.9249,18.4241"  # where the test node itself sits (region AFR)


def accepted(node: h.NodeProcess, body: bytes, path: str = "/register") -> dict:
    r = node.post(path, body)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    js = r.json()
    assert js["outcome"] == "accepted", js
    return js


def rejected(node: h.NodeProcess, body: bytes, code: str, path: str = "/register", status: int = 400) -> dict:
    r = node.post(path, body)
    assert r.status_code == status, r.text
    js = r.json()
    assert js["code"] == code, js
    assert isinstance(js["error"], str) and js["error"]
    return js


def rejected_count(node: h.NodeProcess, reason: str) -> float:
    return h.parse_metric(node.metrics(), "drtc_registry_merges_rejected_total", {"reason": reason})


@pytest.fixture
def afr_node(node_factory) -> h.NodeProcess:
    """A node far from the European test records, in another region."""
    n = node_factory.start(region="AFR", geo=CAPE_TOWN)
    n.wait_own_record()
    return n


def test_accepted_record_is_served_as_signed(node: h.NodeProcess) -> None:
    ident = Identity.from_seed(1001)
    record = make_record(ident, region="EU", geo=PARIS, ttl_s=3600, refresh_s=60, cpu_permille=250,
                         max_sessions=100, active_sessions=50)
    body = sign_record(record, ident)
    before = node.health()["records"]

    js = accepted(node, body)
    assert js["nodeId"] == ident.peer_id
    assert js["hlc"] == {"wallMs": record.hlc_wall_ms, "logical": 0}
    assert node.health()["records"] == before + 1

    r = node.get("/nodeById", id=ident.peer_id)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["nodeId"] == ident.peer_id
    assert got["region"] == "EU"
    assert got["geolocation"] == f"{PARIS[0]},{PARIS[1]}"
    assert (got["latitude"], got["longitude"]) == PARIS
    assert "distanceKm" not in got
    assert got["url"] == record.url and got["discoveryUrl"] == record.discovery_url
    assert got["metricsUrl"] == record.metrics_url and got["ip"] == record.ip
    assert got["version"] == "interop-test"
    assert got["multiaddrs"] == list(record.multiaddrs)
    assert got["capacity"] == {"bandwidthUpKbps": 100_000, "bandwidthDownKbps": 100_000, "cpuCores": 4, "maxSessions": 100}
    assert got["load"] == {"activeSessions": 50, "cpuPermille": 250, "bandwidthUpUsedKbps": 0, "bandwidthDownUsedKbps": 0}
    assert got["loadHeadroom"] == pytest.approx(0.5)  # sessions 50/100 is the most loaded dimension
    assert got["status"] == "active"
    assert got["hlc"] == {"wallMs": record.hlc_wall_ms, "logical": 0}
    assert got["refreshIntervalSeconds"] == 60 and got["ttlSeconds"] == 3600
    assert got["expiresAtMs"] == record.hlc_wall_ms + 3600 * 1000
    assert base64.b64decode(got["pubKey"]) == ident.pub_proto
    # The node serves the owner's bytes unchanged, and they verify here.
    assert base64.b64decode(got["signedRecord"]) == body
    assert h.verify_signed_record(base64.b64decode(got["signedRecord"])).node_id == ident.peer_id


def test_node_own_record_verifies_in_python(node: h.NodeProcess) -> None:
    """The node's own record, signed by the Swift code, verifies with `cryptography`, and its
    JSON view matches the signed body."""
    own = node.wait_own_record()
    record = h.verify_signed_record(base64.b64decode(own["signedRecord"]))
    assert record.node_id == own["nodeId"] == node.peer_id
    assert base64.b64encode(record.pub_key).decode() == own["pubKey"]
    assert record.region == own["region"] == "EU"
    assert (record.geo.latitude, record.geo.longitude) == (own["latitude"], own["longitude"]) == (52.52, 13.405)
    assert record.status == h.NODE_STATUS_ACTIVE
    assert record.hlc_wall_ms == own["hlc"]["wallMs"] and record.hlc_logical == own["hlc"]["logical"]
    assert record.ttl_s == own["ttlSeconds"] and record.refresh_interval_s == own["refreshIntervalSeconds"]
    assert list(record.multiaddrs) == own["multiaddrs"]
    assert all(m.endswith("/p2p/" + node.peer_id) for m in record.multiaddrs)
    # Any change to the body breaks the signature.
    env = h.pb().SignedMediaNodeRecord()
    env.ParseFromString(base64.b64decode(own["signedRecord"]))
    env.body = env.body[:-1] + bytes([env.body[-1] ^ 1])
    with pytest.raises(Exception):
        h.verify_signed_record(env.SerializeToString())


def test_get_media_nodes_orders_by_distance(afr_node: h.NodeProcess) -> None:
    cities = {"paris": PARIS, "berlin": BERLIN, "madrid": MADRID, "rome": ROME, "oslo": OSLO}
    ids = {}
    for i, (name, geo) in enumerate(sorted(cities.items())):
        ident = Identity.from_seed(2000 + i)
        ids[ident.peer_id] = name
        accepted(afr_node, signed(ident, region="EU", geo=geo))
    # One EU record without a position: listed without lat/lon, never with.
    nogeo = Identity.from_seed(2100)
    accepted(afr_node, signed(nogeo, region="EU"))

    probe = (50.1109, 8.6821)  # Frankfurt
    r = afr_node.get("/getMediaNodes", region="EU", lat=probe[0], lon=probe[1], limit=10)
    assert r.status_code == 200, r.text
    nodes = r.json()["nodes"]
    by_distance = sorted(ids, key=lambda i: h.haversine_km(probe, cities[ids[i]]))
    assert [ids[i] for i in by_distance] == ["berlin", "paris", "rome", "oslo", "madrid"]
    assert [n["nodeId"] for n in nodes] == by_distance
    for n in nodes:
        expect = h.haversine_km(probe, cities[ids[n["nodeId"]]])
        assert n["distanceKm"] == pytest.approx(expect, abs=0.01)
    distances = [n["distanceKm"] for n in nodes]
    assert distances == sorted(distances)

    # limit keeps the nearest.
    r = afr_node.get("/getMediaNodes", region="EU", lat=probe[0], lon=probe[1], limit=2)
    assert [ids[n["nodeId"]] for n in r.json()["nodes"]] == ["berlin", "paris"]

    # From Madrid, Madrid first at distance 0.
    r = afr_node.get("/getMediaNodes", lat=MADRID[0], lon=MADRID[1], limit=1)
    (first,) = r.json()["nodes"]
    assert ids[first["nodeId"]] == "madrid" and first["distanceKm"] == 0

    # Without a position: every EU node, the position-less one too, no distances.
    r = afr_node.get("/getMediaNodes", region="EU", limit=100)
    listed = {n["nodeId"] for n in r.json()["nodes"]}
    assert listed == set(ids) | {nogeo.peer_id}
    assert all("distanceKm" not in n for n in r.json()["nodes"])

    # Region filter: the node itself is the only AFR one; no NAM nodes at all.
    r = afr_node.get("/getMediaNodes", region="AFR")
    assert [n["nodeId"] for n in r.json()["nodes"]] == [afr_node.peer_id]
    assert afr_node.get("/getMediaNodes", region="NAM").json() == {"nodes": []}

    # minScore: none of these nodes is measured (Specs/qos.md); 0 matches all, anything above none.
    assert len(afr_node.get("/getMediaNodes", minScore=0, limit=100).json()["nodes"]) == len(ids) + 2
    assert afr_node.get("/getMediaNodes", minScore=0.5).json() == {"nodes": []}


def test_get_media_nodes_orders_by_headroom_without_position(node: h.NodeProcess) -> None:
    loads = {3100: 900, 3101: 100, 3102: 500, 3103: 0}
    by_id = {}
    for seed, permille in loads.items():
        ident = Identity.from_seed(seed)
        by_id[ident.peer_id] = permille
        accepted(node, signed(ident, region="SAM", cpu_permille=permille))
    r = node.get("/getMediaNodes", region="SAM", limit=10)
    got = r.json()["nodes"]
    assert [by_id[n["nodeId"]] for n in got] == [0, 100, 500, 900]
    assert [n["loadHeadroom"] for n in got] == pytest.approx([1.0, 0.9, 0.5, 0.1])


def test_duplicate_stale_and_newer(node: h.NodeProcess) -> None:
    ident = Identity.from_seed(4000)
    t = h.now_ms() - 10_000
    v1 = signed(ident, wall_ms=t, region="EU")
    accepted(node, v1)

    r = node.register(v1)
    assert r.status_code == 200 and r.json()["outcome"] == "duplicate", r.text

    older = signed(ident, wall_ms=t - 1, region="NAM")
    r = node.register(older)
    assert r.status_code == 200 and r.json()["outcome"] == "stale", r.text
    # Same wall time, lower logical counter: also stale.
    v2 = signed(ident, wall_ms=t + 5, logical=3, region="ASI")
    accepted(node, v2)
    r = node.register(signed(ident, wall_ms=t + 5, logical=2, region="OCE"))
    assert r.json()["outcome"] == "stale", r.text
    assert node.get("/nodeById", id=ident.peer_id).json()["region"] == "ASI"

    # Older than the 24 h GC horizon: expired, not stored.
    other = Identity.from_seed(4001)
    r = node.register(signed(other, wall_ms=h.now_ms() - 25 * 3600 * 1000))
    assert r.status_code == 200 and r.json()["outcome"] == "expired", r.text
    assert node.get("/nodeById", id=other.peer_id).json()["code"] == "not_found"

    metrics = node.metrics()
    assert h.parse_metric(metrics, "drtc_registry_merges_ignored_total", {"outcome": "duplicate"}) == 1
    assert h.parse_metric(metrics, "drtc_registry_merges_ignored_total", {"outcome": "stale"}) == 2
    assert h.parse_metric(metrics, "drtc_registry_merges_ignored_total", {"outcome": "expired"}) == 1


def test_record_past_its_ttl_is_not_live(node: h.NodeProcess) -> None:
    ident = Identity.from_seed(4500)
    accepted(node, signed(ident, wall_ms=h.now_ms() - 7200 * 1000, ttl_s=3600))
    r = node.get("/nodeById", id=ident.peer_id)
    assert r.status_code == 404 and r.json()["code"] == "not_live", r.text
    assert ident.peer_id not in {n["nodeId"] for n in node.get("/getMediaNodes", limit=1000).json()["nodes"]}


def test_forged_records_are_rejected_and_counted(node: h.NodeProcess) -> None:
    victim = Identity.from_seed(5000)
    attacker = Identity.from_seed(5001)

    # The attacker writes the victim's node_id with its own key and signature.
    forged = make_record(attacker, node_id=victim.peer_id)
    rejected(node, sign_record(forged, attacker), "key_mismatch")

    # Victim's node_id and key, signed by the attacker.
    rejected(node, sign_record(make_record(victim), attacker), "bad_signature")

    # A genuine record with one bit of its signature flipped.
    env = h.pb().SignedMediaNodeRecord()
    env.ParseFromString(signed(victim))
    env.signature = bytes([env.signature[0] ^ 0x01]) + env.signature[1:]
    rejected(node, env.SerializeToString(), "bad_signature")

    # A genuine signature over a body that was changed afterwards.
    env.ParseFromString(signed(victim, region="EU"))
    rec = h.pb().MediaNodeRecord()
    rec.ParseFromString(env.body)
    rec.region = "NAM"
    env.body = rec.SerializeToString(deterministic=True)
    rejected(node, env.SerializeToString(), "bad_signature")

    metrics = node.metrics()
    assert h.parse_metric(metrics, "drtc_registry_merges_rejected_total", {"reason": "bad_signature"}) == 3
    assert h.parse_metric(metrics, "drtc_registry_merges_rejected_total", {"reason": "key_mismatch"}) == 1
    assert node.get("/nodeById", id=victim.peer_id).json()["code"] == "not_found"


def test_timestamps_from_the_future(node: h.NodeProcess) -> None:
    # Beyond the 10-minute skew bound (Specs/registry.md "Clocks"): refused.
    ident = Identity.from_seed(6000)
    rejected(node, signed(ident, wall_ms=h.now_ms() + 11 * 60_000), "future_timestamp")
    assert rejected_count(node, "future_timestamp") == 1
    assert node.get("/nodeById", id=ident.peer_id).status_code == 404
    # Within it (an owner whose clock runs 5 minutes ahead): accepted, and live.
    accepted(node, signed(ident, wall_ms=h.now_ms() + 5 * 60_000))
    assert node.get("/nodeById", id=ident.peer_id).status_code == 200


@pytest.mark.parametrize(
    "fields",
    [
        {"status": 0},
        {"ttl_s": 10, "refresh_s": 30},
        {"refresh_s": 0},
        {"refresh_s": 86_401, "ttl_s": 86_401},
        {"ttl_s": 7 * 86_400 + 1},
        {"cpu_permille": 1001},
        {"geo": (90.5, 0.0)},
        {"region": "R" * 17},
    ],
    ids=["status-unspecified", "ttl-below-refresh", "refresh-0", "refresh-too-long", "ttl-over-7-days",
         "cpu-permille", "latitude", "region-too-long"],
)
def test_malformed_records(node: h.NodeProcess, fields: dict) -> None:
    ident = Identity.from_seed(7000)
    rejected(node, signed(ident, **fields), "malformed")
    assert rejected_count(node, "malformed") == 1


def test_undecodable_bodies(node: h.NodeProcess) -> None:
    rejected(node, b"\xff\xfe not a protobuf", "malformed")
    rejected(node, b"", "malformed")
    # A valid envelope whose signature is not 64 bytes.
    env = h.pb().SignedMediaNodeRecord()
    env.ParseFromString(signed(Identity.from_seed(7100)))
    env.signature = env.signature[:63]
    rejected(node, env.SerializeToString(), "malformed")
    assert rejected_count(node, "malformed") == 3


def test_content_type_and_size_limits(node: h.NodeProcess) -> None:
    body = signed(Identity.from_seed(8000))
    for path in ("/register", "/deregister"):
        r = node.post(path, body, content_type="application/json")
        assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type", r.text
        r = node.post(path, b"\0" * (h.MAX_SIGNED_RECORD + 1))
        assert r.status_code == 413 and r.json()["code"] == "too_large", r.text
    # octet-stream is accepted as a synonym.
    r = node.post("/register", body, content_type="application/octet-stream")
    assert r.status_code == 200 and r.json()["outcome"] == "accepted", r.text
    # Exactly at the limit is not "too large" (it is just not a record).
    r = node.post("/register", b"\0" * h.MAX_SIGNED_RECORD)
    assert r.status_code == 400 and r.json()["code"] == "malformed", r.text


def test_deregister_tombstone_removes_node(node: h.NodeProcess) -> None:
    ident = Identity.from_seed(9000)
    t = h.now_ms() - 5_000
    accepted(node, signed(ident, wall_ms=t, region="OCE", geo=(-33.8688, 151.2093)))
    assert node.get("/nodeById", id=ident.peer_id).status_code == 200
    records = node.health()["records"]
    digest = node.health()["tableDigest"]

    # /deregister insists on a tombstone (but the valid record was merged anyway).
    newer_active = signed(ident, wall_ms=t + 1, region="OCE", geo=(-33.8688, 151.2093))
    rejected(node, newer_active, "not_a_tombstone", path="/deregister")
    assert node.get("/nodeById", id=ident.peer_id).json()["hlc"]["wallMs"] == t + 1

    tomb = signed(ident, wall_ms=t + 2, status=h.NODE_STATUS_LEAVING, region="OCE", geo=(-33.8688, 151.2093))
    js = accepted(node, tomb, path="/deregister")
    assert js["hlc"]["wallMs"] == t + 2

    r = node.get("/nodeById", id=ident.peer_id)
    assert r.status_code == 404 and r.json()["code"] == "not_live", r.text
    assert node.get("/getMediaNodes", region="OCE").json() == {"nodes": []}
    near = node.get("/getMediaNodes", lat=-33.8, lon=151.2, limit=1000).json()["nodes"]
    assert [n["nodeId"] for n in near] == [node.peer_id]
    listed = {n["nodeId"] for n in node.get("/listMediaNodes", limit=1000).json()["nodes"]}
    assert ident.peer_id not in listed
    health = node.health()
    assert health["records"] == records - 1
    assert health["tableDigest"] != digest

    # The tombstone wins over the older ACTIVE record, which is now stale.
    r = node.register(newer_active)
    assert r.json()["outcome"] == "stale", r.text
    # The node can come back with a newer ACTIVE record.
    accepted(node, signed(ident, wall_ms=t + 3, region="OCE"))
    assert node.get("/nodeById", id=ident.peer_id).status_code == 200


def test_list_media_nodes_pagination(node: h.NodeProcess) -> None:
    created = set()
    for seed in range(10_000, 10_057):
        ident = Identity.from_seed(seed)
        accepted(node, signed(ident, region="NAM"))
        created.add(ident.peer_id)
    # One expired-by-TTL and one tombstoned node are not listed.
    dead = Identity.from_seed(10_100)
    accepted(node, signed(dead, wall_ms=h.now_ms() - 7200 * 1000, ttl_s=3600))
    gone = Identity.from_seed(10_101)
    accepted(node, signed(gone, status=h.NODE_STATUS_LEAVING))

    expected = created | {node.peer_id}
    for limit in (1, 7, 10, 58, 1000):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            r = node.get("/listMediaNodes", **params)
            assert r.status_code == 200, r.text
            page = r.json()
            assert set(page) == {"nodes", "nextCursor"}
            assert len(page["nodes"]) <= limit
            seen += [n["nodeId"] for n in page["nodes"]]
            pages += 1
            cursor = page["nextCursor"]
            if cursor is None:
                break
            assert cursor == page["nodes"][-1]["nodeId"]
            assert pages <= len(expected) + 1, "pagination does not terminate"
        assert len(seen) == len(set(seen)), f"limit={limit}: a record was listed twice"
        assert set(seen) == expected, f"limit={limit}"
        assert seen == sorted(seen), "pages are in nodeId text order"
        assert pages == -(-len(expected) // limit)
    assert node.health()["records"] == len(expected)
    # Default page size is 100.
    assert len(node.get("/listMediaNodes").json()["nodes"]) == len(expected)


def test_every_listed_signed_record_verifies(node: h.NodeProcess) -> None:
    bodies = {}
    for seed in range(11_000, 11_010):
        ident = Identity.from_seed(seed)
        bodies[ident.peer_id] = signed(ident, region="ASI", geo=(35.0 + seed % 10, 139.0))
        accepted(node, bodies[ident.peer_id])
    nodes = node.get("/listMediaNodes", limit=1000).json()["nodes"]
    assert len(nodes) == 11
    for n in nodes:
        raw = base64.b64decode(n["signedRecord"], validate=True)
        record = h.verify_signed_record(raw)
        assert record.node_id == n["nodeId"]
        assert record.hlc_wall_ms == n["hlc"]["wallMs"]
        if n["nodeId"] in bodies:
            assert raw == bodies[n["nodeId"]]


def test_concurrent_submissions_converge(node: h.NodeProcess) -> None:
    """Many versions of one node, submitted concurrently in shuffled order: the newest wins,
    whatever the commit batches were; and one record sent many times at once is accepted
    exactly once."""
    def post(body: bytes) -> str:
        r = requests.post(node.url + "/register", data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["outcome"]

    ident = Identity.from_seed(12_000)
    base = h.now_ms() - 60_000
    versions = [signed(ident, wall_ms=base + k, region=h.REGIONS[k % 6]) for k in range(200)]
    order = list(range(200))
    random.Random(7).shuffle(order)
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(post, [versions[k] for k in order]))
    assert set(outcomes) <= {"accepted", "stale"}, outcomes
    accepted_versions = outcomes.count("accepted")
    assert accepted_versions >= 1
    # The version submitted last in each thread's view can differ, but the newest always wins.
    got = node.get("/nodeById", id=ident.peer_id).json()
    assert got["hlc"]["wallMs"] == base + 199
    assert base64.b64decode(got["signedRecord"]) == versions[199]
    assert outcomes[order.index(199)] == "accepted"

    other = Identity.from_seed(12_001)
    same = signed(other)
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(post, [same] * 64))
    assert outcomes.count("accepted") == 1, outcomes
    assert outcomes.count("duplicate") == 63

    metrics = node.metrics()
    assert h.parse_metric(metrics, "drtc_registry_merges_ignored_total", {"outcome": "duplicate"}) == 63
    assert h.parse_metric(metrics, "drtc_registry_merges_ignored_total", {"outcome": "stale"}) == 200 - accepted_versions
    assert node.health()["records"] == 3  # the node itself and the two test nodes
