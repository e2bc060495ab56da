"""The orchestrator on every peer (Specs/orchestrator.md, Specs/rpc.md): allocation through any
peer, cascades of real `drtc node` processes on 127.0.0.1 with media crossing node-to-node pipes,
media tokens on WHIP/WHEP, and the signed RPC's rejections."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

import drtc_helpers as h
import media_clients as mc
from conftest import NodeFactory

TALLINN = (59.44, 24.75)
TOKYO = (35.68, 139.69)
NEW_YORK = (40.71, -74.01)


def start_mesh(factory: NodeFactory, places: list[tuple[str, tuple[float, float]]], **kw: Any) -> list[h.NodeProcess]:
    """Nodes at `places` (region, (lat, lon)) with tokens required, joined into one mesh."""
    nodes: list[h.NodeProcess] = []
    for region, (lat, lon) in places:
        extra = list(kw.get("extra", []))
        if nodes:
            extra += ["--bootstrap", nodes[0].health()["multiaddrs"][0]]
        nodes.append(factory.start(region=region, geo=f"{lat},{lon}", open_media=False, extra=extra))
    for n in nodes:
        n.wait_own_record()
    h.wait_for_mesh(nodes)
    return nodes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, registry_pb2: Any) -> Iterator[dict[str, h.NodeProcess]]:
    """Tallinn, Tokyo and New York; the tests ask New York."""
    factory = NodeFactory(tmp_path_factory.mktemp("orchestrator"))
    try:
        tallinn, tokyo, new_york = start_mesh(factory, [("EU", TALLINN), ("ASI", TOKYO), ("NAM", NEW_YORK)])
        yield {"tallinn": tallinn, "tokyo": tokyo, "new_york": new_york}
    finally:
        factory.cleanup()


def allocate(peer: h.NodeProcess, room: str, role: str, where: tuple[float, float] | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {"room": room, "role": role, **extra}
    if where:
        body["lat"], body["lon"] = where
    r = peer.post("/allocate", json.dumps(body).encode(), content_type="application/json")
    assert r.status_code == 200, r.text
    return r.json()


def ring_owners(room: str, peer_ids: list[str], points: int = 8) -> list[str]:
    """Owner ring (Specs/orchestrator.md "Where placement lives"): each peer at the first 8
    bytes (big-endian) of SHA-256(peer bytes ‖ i) for i < 8, the room at SHA-256(name); the
    distinct peers clockwise from the room, owner first."""
    def position(data: bytes) -> int:
        return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    ring = sorted((position(h.b58decode(p) + bytes([i])), h.b58decode(p), p) for p in peer_ids for i in range(points))
    target = position(room.encode())
    start = next((k for k, point in enumerate(ring) if point[0] >= target), 0)
    out: list[str] = []
    for k in range(len(ring)):
        peer = ring[(start + k) % len(ring)][2]
        if peer not in out:
            out.append(peer)
    return out


def room_view(peer: h.NodeProcess, room: str) -> requests.Response:
    return h.assert_conforms(requests.get(f"{peer.url}/rooms/{room}", timeout=10), "/rooms/{room}", "GET")


def test_publisher_and_viewer_land_on_their_nearest_nodes_and_media_crosses_a_pipe(world: dict[str, h.NodeProcess]) -> None:
    ny, tallinn, tokyo = world["new_york"], world["tallinn"], world["tokyo"]

    async def scenario() -> None:
        pub_alloc = allocate(ny, "cascade", "publish", (59.40, 24.70))
        assert pub_alloc["nodeId"] == tallinn.peer_id, pub_alloc
        assert pub_alloc["url"] == f"{tallinn.url}/whip/cascade"
        assert pub_alloc["strategy"] == "proximity"
        assert pub_alloc["expiresAtMs"] > h.now_ms()
        pub, track, _ = await mc.publish(ny.url, "cascade", url=pub_alloc["url"], token=pub_alloc["token"])
        view_alloc = allocate(ny, "cascade", "view", (35.70, 139.70))
        assert view_alloc["nodeId"] == tokyo.peer_id, view_alloc
        viewer = await mc.view(ny.url, "cascade", url=view_alloc["url"], token=view_alloc["token"], retry_conflict=10)
        await mc.wait_for(lambda: viewer.frames["video"] > 0, 30, "the first frame at the Tokyo viewer")
        warm = track.sent
        await mc.wait_for(lambda: track.sent - warm >= 30, 30, "30 more frames sent")
        sent0, got0 = track.sent, viewer.frames["video"]
        # A window of frames sent, not of time: a busy machine only makes it longer.
        await mc.wait_for(lambda: track.sent - sent0 >= 150, 60, "150 frames sent in the window")
        sent, got = track.sent - sent0, viewer.frames["video"] - got0
        assert sent >= 150, f"the window closed after {sent} frames sent"
        assert got >= 0.9 * sent, f"the Tokyo viewer decoded {got} of {sent} frames"
        room = room_view(ny, "cascade").json()
        by_id = {n["nodeId"]: n for n in room["nodes"]}
        assert by_id[tallinn.peer_id]["publishers"] == 1 and by_id[tokyo.peer_id]["viewers"] == 1, room
        pipe = next(p for p in room["pipes"] if p["from"] == tallinn.peer_id and p["to"] == tokyo.peer_id)
        assert pipe["tracks"] == 1 and pipe["packets"] > 100, room
        await viewer.session.pc.close()
        await pub.pc.close()

    asyncio.run(scenario())
    # Tokyo received the stream over the pipe and forwarded it; Tallinn sent it once to Tokyo.
    assert h.parse_metric(tokyo.metrics(), "drtc_media_packets_total", {"kind": "rtp_in"}) > 100
    assert h.parse_metric(ny.metrics(), "drtc_orchestrator_allocations_total", {"result": "allocated"}) >= 1 or \
        any(h.parse_metric(n.metrics(), "drtc_orchestrator_allocations_total", {"result": "allocated"}) >= 2 for n in world.values())


def test_rpc_rejections_each_have_their_code(world: dict[str, h.NodeProcess]) -> None:
    """Signed RPC (Specs/rpc.md): a registered orchestrator's call passes; expired, not yet
    valid, tampered, wrong key, wrong audience, replayed and body-changed calls are 401s with
    their codes, counted in /metrics."""
    node, other = world["tokyo"], world["tallinn"]
    orchestrator = h.Identity.from_seed(77_001)
    assert node.register(h.signed(orchestrator)).json()["outcome"] == "accepted"
    stranger = h.Identity.from_seed(77_002)
    path, body = "/rpc/v1/rooms", json.dumps({"room": "rpc-room"}).encode()

    def post(headers: dict[str, str], data: bytes = body) -> requests.Response:
        return requests.post(node.url + path, data=data, headers={**headers, "Content-Type": "application/json"}, timeout=10)

    def payload(**kw: Any) -> str:
        return h.rpc_payload(orchestrator, node.peer_id, "POST", path, body, **kw)

    ok = post(h.rpc_sign(payload(), orchestrator))
    assert ok.status_code == 200, ok.text
    t = h.now_ms()
    good = payload()
    nonce = json.loads(good)["nonce"]
    tampered = good.replace(nonce, ("B" if nonce[0] == "A" else "A") + nonce[1:])
    cases = {
        "expired": h.rpc_sign(payload(iss_ms=t - 10 * 60_000), orchestrator),
        "not_yet_valid": h.rpc_sign(payload(iss_ms=t + 10 * 60_000), orchestrator),
        "bad_signature": {**h.rpc_sign(good, orchestrator), "x-drtc-payload": tampered},  # changed after signing
        "wrong_key": h.rpc_sign(payload(), stranger),  # signed by another key than the payload names
        "wrong_audience": h.rpc_sign(h.rpc_payload(orchestrator, other.peer_id, "POST", path, body), orchestrator),
        "unknown_orchestrator": h.rpc_sign(h.rpc_payload(stranger, node.peer_id, "POST", path, body), stranger),
        "missing_credentials": {},
    }
    expected = {"wrong_key": "bad_signature"}
    before = node.metrics()
    for name, headers in cases.items():
        r = post(headers)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.json()["code"] == expected.get(name, name), (name, r.json())
    body_changed = post(h.rpc_sign(payload(), orchestrator), data=json.dumps({"room": "other-room"}).encode())
    assert body_changed.status_code == 401 and body_changed.json()["code"] == "body_mismatch", body_changed.text
    replayed = h.rpc_sign(payload(), orchestrator)
    assert post(replayed).status_code == 200
    again = post(replayed)
    assert again.status_code == 401 and again.json()["code"] == "replay", again.text
    wrong_path = h.rpc_sign(h.rpc_payload(orchestrator, node.peer_id, "POST", "/rpc/v1/pipes", body), orchestrator)
    r = post(wrong_path)
    assert r.status_code == 401 and r.json()["code"] == "wrong_endpoint"
    after = node.metrics()
    for code in ("expired", "not_yet_valid", "bad_signature", "wrong_audience", "unknown_orchestrator", "body_mismatch", "replay"):
        grew = h.parse_metric(after, "drtc_rpc_rejections_total", {"code": code}) - h.parse_metric(before, "drtc_rpc_rejections_total", {"code": code})
        assert grew >= 1, f"{code} not counted"
    # An authenticated status call answers the node's load and rooms.
    status = h.rpc_call(node, orchestrator, "GET", "/rpc/v1/status")
    assert status.status_code == 200 and status.json()["nodeId"] == node.peer_id, status.text


def test_whip_and_whep_need_a_token_from_an_accepted_orchestrator(world: dict[str, h.NodeProcess]) -> None:
    node, other = world["tallinn"], world["tokyo"]
    offer = (Path(__file__).resolve().parents[2] / "Fixtures" / "sdp" / "chrome-video-sendonly.sdp").read_text()

    def whip(path: str, headers: dict[str, str] | None = None, **params: str) -> requests.Response:
        return requests.post(node.url + path, data=offer, params=params or None, allow_redirects=False, timeout=10,
                             headers={"Content-Type": "application/sdp", **(headers or {})})

    r = whip("/whip/tok")
    assert r.status_code == 401 and r.json()["code"] == "missing_token", r.text
    assert whip("/whep/tok").json()["code"] == "missing_token"
    # A token signed by a key no registry record names.
    import base64
    stranger = h.Identity.from_seed(77_003)
    claims = json.dumps({"iss": stranger.peer_id, "aud": node.peer_id, "room": "tok", "role": "publish",
                         "iat": h.now_ms(), "exp": h.now_ms() + 60_000}, separators=(",", ":")).encode()
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
    foreign = b64(claims) + "." + b64(stranger.sign(b"drtc-media-token:" + claims))
    r = whip("/whip/tok", {"Authorization": f"Bearer {foreign}"})
    assert r.status_code == 401 and r.json()["code"] == "unknown_orchestrator", r.text
    r = whip("/whip/tok", access_token=foreign)
    assert r.status_code == 401 and r.json()["code"] == "unknown_orchestrator", r.text
    assert whip("/whip/tok", {"Authorization": "Bearer garbage"}).json()["code"] == "malformed_token"
    # A real token is scoped: another room or role is refused; another node's is redirected there.
    alloc = allocate(node, "tok", "publish", TALLINN)
    assert alloc["nodeId"] == node.peer_id
    assert whip("/whip/other", {"Authorization": f"Bearer {alloc['token']}"}).json()["code"] == "wrong_room"
    assert whip("/whep/tok", {"Authorization": f"Bearer {alloc['token']}"}).json()["code"] == "wrong_role"
    moved = requests.post(other.url + "/whip/tok", data=offer, allow_redirects=False, timeout=10,
                          headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {alloc['token']}"})
    assert moved.status_code == 307 and moved.headers["Location"].startswith(f"{node.url}/whip/tok?access_token="), moved.text
    # Placement hints on a peer that should not serve the client: 307 to the one that should.
    r = requests.post(other.url + "/whip/hinted", data=offer, params={"lat": "59.4", "lon": "24.7"}, allow_redirects=False,
                      timeout=10, headers={"Content-Type": "application/sdp"})
    assert r.status_code == 307 and r.headers["Location"].startswith(f"{node.url}/whip/hinted?access_token="), r.text


def test_allocate_rejects_bad_input(world: dict[str, h.NodeProcess]) -> None:
    ny = world["new_york"]
    for body, needle in [
        (b"not json", "expected"),
        (json.dumps({"room": "r"}).encode(), "role"),
        (json.dumps({"room": "bad room", "role": "view"}).encode(), "room"),
        (json.dumps({"room": "r", "role": "dance"}).encode(), "role"),
        (json.dumps({"room": "r", "role": "view", "lat": 95, "lon": 0}).encode(), "lat"),
        (json.dumps({"room": "r", "role": "view", "lat": 10}).encode(), "lat"),
        (json.dumps({"room": "r", "role": "view", "region": "MARS"}).encode(), "region"),
        (json.dumps({"room": "r", "role": "view", "strategy": "random"}).encode(), "strategy"),
    ]:
        r = ny.post("/allocate", body, content_type="application/json")
        assert r.status_code == 400, (body, r.text)
        assert needle in r.json()["error"], (body, r.json())
    assert room_view(ny, "never-allocated").status_code == 404


FRANKFURT = (50.11, 8.68)
SAO_PAULO = (-23.55, -46.63)
TORONTO = (43.65, -79.38)


def test_fanout_sends_one_stream_per_edge_and_viewers_of_a_killed_edge_come_back(node_factory: NodeFactory) -> None:
    """A livestream: the publisher's node is the origin, viewers in three places watch three
    edges, two each. The origin sends one copy per edge, not per viewer. An edge killed with
    kill -9: its viewers ask again and decode again from another node."""
    origin, tokyo, new_york, sao_paulo, toronto = start_mesh(node_factory, [
        ("EU", FRANKFURT), ("ASI", TOKYO), ("NAM", NEW_YORK), ("SAM", SAO_PAULO), ("NAM", TORONTO)])
    peer = origin  # every allocation asks one peer; any would do
    places = {tokyo.peer_id: (35.6, 139.8), new_york.peer_id: (40.7, -74.1), sao_paulo.peer_id: (-23.6, -46.7)}
    report: dict[str, Any] = {}

    async def scenario() -> None:
        alloc = allocate(peer, "live", "publish", (50.1, 8.7), strategy="fanout")
        assert alloc["nodeId"] == origin.peer_id and alloc["strategy"] == "fanout", alloc
        pub, track, _ = await mc.publish(peer.url, "live", url=alloc["url"], token=alloc["token"])
        viewers: dict[str, list[mc.Viewer]] = {}
        for edge_id, where in places.items():
            for _ in range(2):
                a = allocate(peer, "live", "view", where)
                assert a["nodeId"] == edge_id and a["strategy"] == "fanout", a
                viewers.setdefault(edge_id, []).append(
                    await mc.view(peer.url, "live", url=a["url"], token=a["token"], retry_conflict=10))
        everyone = [v for vs in viewers.values() for v in vs]
        await mc.wait_for(lambda: all(v.frames["video"] > 0 for v in everyone), 40, "a decoded frame at all six viewers")
        warm = track.sent
        await mc.wait_for(lambda: track.sent - warm >= 30, 30, "30 more frames sent")
        before = origin.metrics()
        got0, sent0 = [v.frames["video"] for v in everyone], track.sent
        await mc.wait_for(lambda: track.sent - sent0 >= 150, 60, "150 frames sent in the window")
        after = origin.metrics()
        sent = track.sent - sent0
        got = [v.frames["video"] - g for v, g in zip(everyone, got0)]
        report["decoded_of_sent"] = [f"{g}/{sent}" for g in got]
        assert all(g >= 0.5 * sent for g in got), report
        delta = lambda kind: h.parse_metric(after, "drtc_media_packets_total", {"kind": kind}) - h.parse_metric(before, "drtc_media_packets_total", {"kind": kind})
        report["origin_rtp_out_per_rtp_in"] = round(delta("rtp_out") / delta("rtp_in"), 2)
        # Three edges: three copies of each packet, where serving six viewers would take six.
        assert 2.5 <= report["origin_rtp_out_per_rtp_in"] <= 3.5, report
        room = room_view(peer, "live").json()
        assert {p["to"] for p in room["pipes"] if p["from"] == origin.peer_id} == set(places), room
        assert all(p["tracks"] == 1 for p in room["pipes"]), room
        assert {n["nodeId"]: n["viewers"] for n in room["nodes"] if n["nodeId"] in places} == {e: 2 for e in places}, room

        # kill -9 the New York edge.
        lost = viewers[new_york.peer_id]
        killed_at = time.monotonic()
        new_york.kill9()
        # The viewers notice the stall (no frame for 1 s), then ask the peer again.
        marks = [v.frames["video"] for v in lost]
        last_change = time.monotonic()
        while time.monotonic() - last_change < 1.0:
            await asyncio.sleep(0.05)
            now = [v.frames["video"] for v in lost]
            if now != marks:
                marks, last_change = now, time.monotonic()
            assert time.monotonic() - killed_at < 20, "the viewers never stalled"
        report["stall_noticed_s"] = round(time.monotonic() - killed_at, 2)
        rejoined: list[mc.Viewer] = []
        for v in lost:
            await v.session.pc.close()
            deadline = time.monotonic() + 30
            while True:
                a = allocate(peer, "live", "view", places[new_york.peer_id])
                try:
                    rejoined.append(await mc.view(peer.url, "live", url=a["url"], token=a["token"], retry_conflict=10))
                    break
                except (requests.ConnectionError, AssertionError):
                    # Handed the dead node before the orchestrator noticed it: ask again.
                    assert time.monotonic() < deadline, "no working allocation within 30 s"
                    await asyncio.sleep(0.2)
            # Toronto, the nearest node left, joins the room as a new edge.
            assert a["nodeId"] == toronto.peer_id, a
        await mc.wait_for(lambda: all(v.frames["video"] > 0 for v in rejoined), 30, "frames at the rejoined viewers")
        report["decoding_again_s"] = round(time.monotonic() - killed_at, 2)
        start = [v.frames["video"] for v in rejoined]
        await mc.wait_for(lambda: all(v.frames["video"] - s >= 20 for v, s in zip(rejoined, start)), 30,
                          "20 more frames at every rejoined viewer (they do not stall)")
        for v in everyone + rejoined:
            await v.session.pc.close()
        await pub.pc.close()

    asyncio.run(scenario())
    print(json.dumps({"fanout": report}))


def test_a_room_outlives_its_owner_peer(node_factory: NodeFactory) -> None:
    """The peer that owns a room's placement is killed with kill -9; another peer, asked for a
    viewer, continues the same room (same publisher node, next version) from its replica."""
    tallinn, tokyo, new_york = start_mesh(node_factory, [("EU", TALLINN), ("ASI", TOKYO), ("NAM", NEW_YORK)])
    peers = {n.peer_id: n for n in (tallinn, tokyo, new_york)}

    def ring(room: str) -> list[str]:
        """The room's owner and replica holders, best first, computed here from Specs/
        orchestrator.md (consistent hashing over the three live peers)."""
        return ring_owners(room, list(peers))

    async def scenario() -> None:
        # Tallinn first owns a room it serves itself, so it holds a health entry for its own
        # media node that predates the room below (the case that once made a continuing owner
        # drop the live publisher's node from the room).
        warm = next(f"warm-{i}" for i in range(1000) if ring(f"warm-{i}")[0] == tallinn.peer_id)
        assert allocate(new_york, warm, "publish", TALLINN)["nodeId"] == tallinn.peer_id
        assert room_view(new_york, warm).json()["owner"] == tallinn.peer_id
        # A room owned by another peer, with Tallinn — the publisher's node — next on the ring:
        # when the owner dies, Tallinn continues the room from its replica.
        room = next(f"owned-{i}" for i in range(1000) if ring(f"owned-{i}")[0] != tallinn.peer_id
                    and ring(f"owned-{i}")[1] == tallinn.peer_id)
        alloc = allocate(new_york, room, "publish", TALLINN)
        owner = room_view(new_york, room).json()["owner"]
        assert owner == ring(room)[0], (owner, ring(room))
        assert alloc["nodeId"] == tallinn.peer_id
        pub, _, _ = await mc.publish(new_york.url, room, url=alloc["url"], token=alloc["token"])
        before = room_view(new_york, room).json()
        # The other two peers hold the replica before the owner dies.
        others = [n for pid, n in peers.items() if pid != owner]
        h.wait_until(lambda: all(h.rpc_call(n, probe, "GET", f"/rpc/v1/placements/{room}").status_code == 200 for n in others),
                     10, "the placement replicated to the other peers")
        peers[owner].kill9()
        asker = next(n for n in others if n is not tallinn)
        view = allocate(asker, room, "view", (59.0, 25.0))
        assert view["nodeId"] == tallinn.peer_id, view
        viewer = await mc.view(asker.url, room, url=view["url"], token=view["token"], retry_conflict=10)
        await mc.wait_for(lambda: viewer.frames["video"] > 30, 30, "frames at the viewer placed by the surviving peer")
        # The continuation is owned by Tallinn (the next on the ring), whose new version reaches
        # the asker's replica by RPC: wait for it rather than race it.
        seen: dict = {}

        def continued() -> bool:
            seen["view"] = room_view(asker, room).json()
            return seen["view"]["owner"] != owner

        h.wait_until(continued, 30, "the surviving peers name a live owner for the room")
        after = seen["view"]
        assert after["owner"] == tallinn.peer_id and after["version"] > before["version"], (before, after)
        assert [n["publishers"] for n in after["nodes"] if n["nodeId"] == tallinn.peer_id] == [1], after
        await viewer.session.pc.close()
        await pub.pc.close()

    # A key with a live record may call RPC; its version keeps it out of room ownership.
    probe = h.Identity.from_seed(77_010)
    for n in peers.values():
        assert n.register(h.signed(probe)).json()["outcome"] in ("accepted", "duplicate")
    asyncio.run(scenario())


from test_media_chromium import browsers, page_url  # noqa: E402,F401  (fixtures)


def test_chromium_publishes_through_a_307_redirect(world: dict[str, h.NodeProcess], browsers) -> None:
    """Chromium's WHIP POST to New York with Tallinn's coordinates is redirected (307, with an
    access_token) to the Tallinn node, which serves it. Its three simulcast layers all cross the
    pipe to Tokyo, where two viewers pick different layers."""
    ny, tallinn, tokyo = world["new_york"], world["tallinn"], world["tokyo"]
    pub = browsers()
    pub.call("window.publish(arguments[0], 'browser', true, 960, 540, arguments[1])", ny.url, "lat=59.44&lon=24.75")
    pub.wait_status("published")
    from test_media_chromium import inbound  # noqa: F401
    pub.wait_stats(lambda st: sum(1 for r in st if r["type"] == "outbound-rtp" and r["framesEncoded"] > 0) >= 2,
                   30, "at least two simulcast layers encoding")
    served_by = pub.call("return window.state.servedBy")
    assert served_by.startswith(f"{tallinn.url}/whip/browser?access_token="), served_by
    room = room_view(ny, "browser").json()
    assert [n["publishers"] for n in room["nodes"] if n["nodeId"] == tallinn.peer_id] == [1], room

    async def watch() -> None:
        viewers = {}
        for rid in ("q", "h"):
            a = allocate(ny, "browser", "view", (35.7, 139.7))
            assert a["nodeId"] == tokyo.peer_id, a
            viewers[rid] = await mc.view(ny.url, "browser", url=a["url"] + f"?rid={rid}", token=a["token"], retry_conflict=10)
        await mc.wait_for(lambda: all(v.frames["video"] > 60 for v in viewers.values()), 40,
                          "60 frames of each simulcast layer in Tokyo")
        # Layers are switched in on keyframes; the last size seen is the layer asked for.
        assert (240, 135) in viewers["q"].sizes and (480, 270) in viewers["h"].sizes, {k: v.sizes for k, v in viewers.items()}
        for v in viewers.values():
            await v.session.pc.close()

    asyncio.run(watch())
