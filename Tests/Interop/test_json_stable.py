"""JSON answers are stable (Specs/openapi.yaml "JSON"): the keys of every object come sorted by
their UTF-8 bytes, identical requests get byte-identical bodies, and computed numbers carry no
binary floating-point noise (`loadHeadroom` 1 - 0.426 is 0.574, not 0.5740000000000001)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

import drtc_helpers as h

NUMBER = re.compile(rb'(?<=[:\[,])-?\d+(?:\.(\d+))?(?:[eE][-+]?\d+)?(?=[,\]}])')


def sorted_everywhere(body: bytes) -> None:
    def hook(pairs: list[tuple[str, object]]) -> dict:
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys, key=lambda k: k.encode()), keys
        return dict(pairs)

    json.loads(body, object_pairs_hook=hook)


def test_json_bodies_are_sorted_byte_identical_and_rounded(node: h.NodeProcess) -> None:
    ident = h.Identity.from_seed(4260)
    assert node.register(h.signed(ident, geo=(48.8566, 2.3522), cpu_permille=426, max_sessions=100,
                                  active_sessions=10)).status_code == 200
    paths = ["/health", "/getMediaNodes", "/getMediaNodes?lat=52.5&lon=13.4&limit=5", f"/nodeById?id={ident.peer_id}",
             "/listMediaNodes", "/listMediaNodes?limit=1", "/nodeById?id=nope", "/getMediaNodes?lat=100&lon=0"]
    for path in paths:
        first = requests.get(node.url + path, timeout=10)
        second = requests.get(node.url + path, timeout=10)
        assert first.content == second.content, path
        sorted_everywhere(first.content)
        # Numbers outside strings: none with more than 6 decimals.
        text = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', first.content)
        for m in NUMBER.finditer(text):
            assert m.group(1) is None or len(m.group(1)) <= 6, (path, m.group(0))

    near = requests.get(node.url + "/getMediaNodes?lat=52.5&lon=13.4", timeout=10).content
    assert b'"loadHeadroom":0.574,' in near
    mine = next(n for n in json.loads(near)["nodes"] if n["nodeId"] == ident.peer_id)
    assert round(mine["distanceKm"], 3) == mine["distanceKm"]
    assert list(mine) == sorted(mine, key=lambda k: k.encode())  # distanceKm in its sorted place


def test_orchestrator_answers_follow_the_same_rules(node_factory) -> None:
    """`POST /allocate`, `GET /rooms/{room}` and the body of a WHIP redirect (Specs/orchestrator.md)
    are written like every other answer: keys sorted at every depth, `/` not escaped, and two
    identical reads of a room give identical bytes. The node requires tokens, its default."""
    node = node_factory.start(open_media=False)
    node.wait_own_record()
    alloc = node.post("/allocate", json.dumps({"room": "stable", "role": "publish", "lat": 52.5, "lon": 13.4}).encode(),
                      content_type="application/json")
    assert alloc.status_code == 200, alloc.text
    sorted_everywhere(alloc.content)
    assert b"\\/" not in alloc.content and alloc.json()["url"] == f"{node.url}/whip/stable"

    first = requests.get(node.url + "/rooms/stable", timeout=10)
    second = requests.get(node.url + "/rooms/stable", timeout=10)
    assert first.status_code == 200 and first.content == second.content, (first.text, second.text)
    sorted_everywhere(first.content)

    offer = (Path(__file__).resolve().parents[2] / "Fixtures" / "sdp" / "chrome-video-sendonly.sdp").read_bytes()
    moved = requests.post(node.url + "/whip/stable", params={"lat": "52.5", "lon": "13.4"}, data=offer, allow_redirects=False,
                          headers={"Content-Type": "application/sdp"}, timeout=10)
    assert moved.status_code == 307, moved.text
    sorted_everywhere(moved.content)
    assert b"\\/" not in moved.content and moved.json() == {"location": moved.headers["Location"]}
