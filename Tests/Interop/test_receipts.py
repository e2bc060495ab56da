"""Session receipts countersigned by the allocating orchestrator (Specs/rewards.md "Data
supplied", issue 17): two `drtc node`s on 127.0.0.1 with 15-second epochs and tokens required.
An aiortc publisher and viewer, allocated through `/allocate`, use a room on one node (the media
node) whose tokens the other node issues (the orchestrator). After a whole epoch of media, both
nodes hold the media node's receipt of that epoch with both signatures (checked here with Python
`cryptography`, independently of drtc), and both nodes' ledgers of the epoch give the media node
the same data supplied b > 0 and a reward R > 0."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature

import drtc_helpers as h
import media_clients as mc
from conftest import NodeFactory

EPOCH_S = 15
ARGS = ["--qos-epoch", str(EPOCH_S), "--qos", "false"]
TALLINN = (59.44, 24.75)
TOKYO = (35.68, 139.69)
B_AV_KBPS = 700


def token_issuer(token: str) -> str:
    claims = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["iss"]


def allocate(peer: h.NodeProcess, room: str, role: str, where: tuple[float, float]) -> dict:
    body = {"room": room, "role": role, "lat": where[0], "lon": where[1]}
    r = peer.post("/allocate", json.dumps(body).encode(), content_type="application/json")
    assert r.status_code == 200, r.text
    return r.json()


def public_key(peer_id: str) -> Any:
    # An Ed25519 PeerID is the identity multihash (0x00, length) of the key's protobuf.
    return h.pubkey_from_protobuf(h.b58decode(peer_id)[2:])


def epoch_now() -> int:
    return h.now_ms() // (EPOCH_S * 1000)


def test_a_served_epoch_is_countersigned_replicated_and_paid(node_factory: NodeFactory) -> None:
    media_node = node_factory.start(region="EU", geo=f"{TALLINN[0]},{TALLINN[1]}", open_media=False, extra=ARGS)
    media_node.wait_own_record()
    orchestrator = node_factory.start(region="ASI", geo=f"{TOKYO[0]},{TOKYO[1]}", open_media=False,
                                      extra=ARGS + ["--bootstrap", media_node.health()["multiaddrs"][0]])
    orchestrator.wait_own_record()
    h.wait_for_mesh([media_node, orchestrator])

    # A room owned by the other node: rooms are spread over the peers by consistent hashing, so
    # among a few names one is owned (and its tokens issued) by the orchestrator node.
    room, pub_alloc = "", {}
    for i in range(40):
        room = f"receipts-{i}"
        pub_alloc = allocate(orchestrator, room, "publish", TALLINN)
        if token_issuer(pub_alloc["token"]) == orchestrator.peer_id:
            break
    assert token_issuer(pub_alloc["token"]) == orchestrator.peer_id, "no room owned by the orchestrator node among 40 names"
    assert pub_alloc["nodeId"] == media_node.peer_id, pub_alloc

    served: dict[str, int] = {}

    async def scenario() -> None:
        pub, track, _ = await mc.publish(orchestrator.url, room, url=pub_alloc["url"], token=pub_alloc["token"])
        view_alloc = allocate(orchestrator, room, "view", TALLINN)
        assert view_alloc["nodeId"] == media_node.peer_id and token_issuer(view_alloc["token"]) == orchestrator.peer_id
        viewer = await mc.view(orchestrator.url, room, url=view_alloc["url"], token=view_alloc["token"], retry_conflict=10)
        await mc.wait_for(lambda: viewer.frames["video"] > 0, 30, "the first frame at the viewer")
        # One whole epoch with the publisher and the viewer connected.
        served["epoch"] = epoch_now() + 1
        await mc.wait_for(lambda: epoch_now() > served["epoch"], 3 * EPOCH_S, f"the end of epoch {served['epoch']}")
        assert viewer.frames["video"] > 0 and track is not None and track.sent > 0
        await viewer.session.pc.close()
        await pub.pc.close()

    asyncio.run(scenario())
    epoch = served["epoch"]

    def receipts_on(node: h.NodeProcess) -> list[dict]:
        r = h.assert_conforms(requests.get(f"{node.url}/rewards/receipts", params={"node": media_node.peer_id, "epoch": epoch}, timeout=10),
                              "/rewards/receipts", "GET")
        return r.json()["receipts"]

    # The media node signs at the epoch's end, the orchestrator countersigns and publishes; both
    # hold it, by the RPC answer and by gossip (or sync).
    for node in (media_node, orchestrator):
        h.wait_until(lambda: receipts_on(node), 60, f"the receipt of epoch {epoch} on {node.url}", interval=0.5)
    on_media, on_orch = receipts_on(media_node), receipts_on(orchestrator)
    assert sorted(r["syncId"] for r in on_media) == sorted(r["syncId"] for r in on_orch)
    full = [r for r in on_media if r["room"] == room]
    assert full, on_media
    for r in full:
        assert r["nodeId"] == media_node.peer_id and r["orchestratorId"] == orchestrator.peer_id
        assert r["epoch"] == epoch and r["epochSeconds"] == EPOCH_S
        assert epoch * EPOCH_S * 1000 <= r["startMs"] < r["endMs"] <= (epoch + 1) * EPOCH_S * 1000
        assert r["role"] == "member"  # a proximity room's node, as the orchestrator's placement says
        # Both signatures, over the bytes the Specs name, by the two nodes' keys.
        body = bytes.fromhex(r["body"])
        node_sig, orch_sig = bytes.fromhex(r["nodeSignature"]), bytes.fromhex(r["orchestratorSignature"])
        public_key(media_node.peer_id).verify(node_sig, b"drtc-session-receipt:" + body)
        public_key(orchestrator.peer_id).verify(orch_sig, b"drtc-receipt-countersign:" + body + node_sig)
        with pytest.raises(InvalidSignature):
            public_key(orchestrator.peer_id).verify(orch_sig, b"drtc-receipt-countersign:" + body)
    # The whole epoch: one publisher and one viewer (the orchestrator's probes saw both).
    minutes = sum(r["minutes"] for r in full)
    assert minutes >= 0.8 * EPOCH_S / 60, full
    assert all(0.9 <= r["publishers"] <= 1 and 0.9 <= r["viewers"] <= 1 for r in full), full
    expected_mb = sum(B_AV_KBPS * 60 * r["publishers"] * ((r["publishers"] - 1) + r["viewers"]) * r["minutes"] / 8 / 1000 for r in full)

    # Both ledgers of the epoch pay the media node for it, equally.
    def row(node: h.NodeProcess) -> dict | None:
        r = node.get("/rewards", epoch=epoch, node=media_node.peer_id, check=False)
        if r.status_code != 200 or not r.json()["nodes"]:
            return None
        line = r.json()["nodes"][0]
        return line if line["dataSuppliedMB"] > 0 else None

    rows = [h.wait_until(lambda n=n: row(n), 60, f"a paid row for the media node on {n.url}", interval=0.5) for n in (media_node, orchestrator)]
    assert rows[0]["dataSuppliedMB"] == rows[1]["dataSuppliedMB"], rows
    assert rows[0]["sessions"] == rows[1]["sessions"] == len(on_media)
    assert math.isclose(rows[0]["dataSuppliedMB"], sum(r["dataSuppliedMB"] for r in on_media), abs_tol=0.002 * len(on_media))
    assert rows[0]["dataSuppliedMB"] >= expected_mb - 0.002 * len(full)
    for line in rows:
        assert line["reward"] > 0 and line["unitReward"] > 0, line
        assert line["demandNearby"] >= 1.8, line
    ledger = orchestrator.get("/rewards", epoch=epoch).json()
    assert "placeholder" not in ledger["sources"]["dataSupplied"] and "receipt" in ledger["sources"]["dataSupplied"]
    # The orchestrator node served nothing: no receipts, b = 0. (Its row, if any, comes from
    # the QoS set: a node too new to hold a ticket for the epoch has none; the media node has one
    # because its receipts add it, Specs/rewards.md "The node set".)
    orch_rows = [n for n in ledger["nodes"] if n["nodeId"] == orchestrator.peer_id]
    assert all(r["dataSuppliedMB"] == 0 and r["sessions"] == 0 for r in orch_rows), orch_rows
    assert h.parse_metric(orchestrator.metrics(), "drtc_receipts_countersigned_total", {"result": "countersigned"}) >= 1
    assert h.parse_metric(media_node.metrics(), "drtc_receipts_sent_total", {"result": "countersigned"}) >= 1

    # Equal sets on both replicas, and durable: a restarted media node still holds them (LMDB,
    # re-verified when loaded).
    h.wait_until(lambda: media_node.health()["receiptsDigest"] == orchestrator.health()["receiptsDigest"], 30,
                 "equal receipt digests", interval=0.5)
    held = sorted(r["syncId"] for r in receipts_on(orchestrator))
    assert media_node.terminate() == 0
    restarted = node_factory.start(data_dir=media_node.data_dir, region="EU", geo=f"{TALLINN[0]},{TALLINN[1]}", open_media=False, extra=ARGS)
    assert sorted(r["syncId"] for r in receipts_on(restarted)) == held


def test_receipt_list_rejects_bad_parameters(node: h.NodeProcess) -> None:
    for params, name in (({"epoch": "soon"}, "epoch"), ({"node": "not-a-peer"}, "node"), ({"room": "x"}, "room")):
        r = requests.get(f"{node.url}/rewards/receipts", params=params, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "invalid_parameter" and name in r.json()["error"], r.json()
    r = requests.get(f"{node.url}/rewards/receipts", timeout=10)
    assert r.status_code == 200 and r.json()["receipts"] == []
    assert requests.post(f"{node.url}/rewards/receipts", timeout=10).status_code == 405
