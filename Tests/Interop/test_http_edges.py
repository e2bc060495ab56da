"""HTTP behaviour the fuzzers do not pin exactly: wrong methods, unknown paths, strict query
parameters. Known node bugs are strict xfails, so they turn into failures once fixed (then
drop the mark)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

import drtc_helpers as h

PATHS = {
    "/health": "GET",
    "/metrics": "GET",
    "/getMediaNodes": "GET",
    "/nodeById": "GET",
    "/listMediaNodes": "GET",
    "/register": "POST",
    "/deregister": "POST",
    "/rewards": "GET",
    "/rewards.csv": "GET",
    "/": "GET",
    "/dashboard/overview": "GET",
    "/dashboard/nodes": "GET",
    "/dashboard/dashboard.js": "GET",
}
METHODS_THAT_WORK = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
# Right form, but outside the range of valid Ed25519 PeerIDs (12D3KooW9pNA…..12D3KooWT3gY…).
NOT_A_PEER_ID = "12D3KooW9" + "1" * 43
UNKNOWN_PEER_ID = "12D3KooWA" + "1" * 43


def raw_request(node: h.NodeProcess, method: str, target: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    u = urlsplit(node.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def assert_error(status: int, headers: dict, data: bytes, expect_status: int, code: str) -> dict:
    assert status == expect_status, data
    assert headers["content-type"].startswith("application/json")
    js = json.loads(data)
    assert js["code"] == code, js
    assert set(js) <= {"error", "code", "parameter"} and js["error"]
    return js


def _wrong_method_cases() -> list:
    cases = []
    for path, allowed in PATHS.items():
        for method in METHODS_THAT_WORK:
            if method != allowed:
                cases.append(pytest.param(method, path, id=f"{method}-{path}"))
        for method in ("TRACE", "QUERY", "PROPFIND"):
            cases.append(pytest.param(method, path, id=f"{method}-{path}"))
    return cases


@pytest.mark.parametrize("method,path", _wrong_method_cases())
def test_wrong_method_is_405_with_allow(module_node: h.NodeProcess, method: str, path: str) -> None:
    status, headers, data = raw_request(module_node, method, path)
    assert_error(status, headers, data, 405, "method_not_allowed")
    # GET paths also answer HEAD (RFC 9110 §9.3.2).
    assert headers.get("allow") == ("GET, HEAD" if PATHS[path] == "GET" else PATHS[path])


@pytest.mark.xfail(strict=True, reason="known limitation: Hummingbird/NIO's HTTP/1 decoder treats CONNECT as a "
                   "tunnel request and never answers it; the connection is closed by the 60 s idle timeout")
def test_connect_is_405_with_allow(module_node: h.NodeProcess) -> None:
    status, headers, data = raw_request(module_node, "CONNECT", "/health", timeout=2)
    assert_error(status, headers, data, 405, "method_not_allowed")
    assert headers.get("allow") == "GET, HEAD"


@pytest.mark.parametrize("path", [p for p, m in PATHS.items() if m == "GET"])
def test_head_on_get_paths(module_node: h.NodeProcess, path: str) -> None:
    target = path + ("?id=" + module_node.peer_id if path == "/nodeById" else "")
    status, headers, data = raw_request(module_node, "HEAD", target)
    assert status == 200, headers
    assert data == b""


def test_unknown_path_is_json_404(module_node: h.NodeProcess) -> None:
    # `/` is the dashboard (Specs/dashboard.md); paths under it that it does not serve are 404s.
    for method, path in (("GET", "/nope"), ("POST", "/registers"), ("GET", "/health/x"), ("GET", "/dashboard/nope"), ("GET", "/rewards/x")):
        status, headers, data = raw_request(module_node, method, path)
        assert_error(status, headers, data, 404, "not_found")


@pytest.mark.parametrize(
    "target,parameter",
    [
        ("/getMediaNodes?lng=3", "lng"),
        ("/getMediaNodes?region=EU&region=EU", "region"),
        ("/getMediaNodes?region=eu", "region"),
        ("/getMediaNodes?lat=10", "lon"),
        ("/getMediaNodes?lon=10", "lat"),
        ("/getMediaNodes?lat=90.0001&lon=0", "lat"),
        ("/getMediaNodes?lat=0&lon=-180.5", "lon"),
        ("/getMediaNodes?lat=nan&lon=0", "lat"),
        ("/getMediaNodes?lat=inf&lon=0", "lat"),
        ("/getMediaNodes?limit=0", "limit"),
        ("/getMediaNodes?limit=1001", "limit"),
        ("/getMediaNodes?limit=1.5", "limit"),
        ("/getMediaNodes?minScore=1.01", "minScore"),
        ("/getMediaNodes?minScore=-0.1", "minScore"),
        ("/nodeById", "id"),
        ("/nodeById?id=", "id"),
        ("/nodeById?id=hello", "id"),
        ("/nodeById?id=" + NOT_A_PEER_ID, "id"),
        ("/nodeById?id=x&id=y", "id"),
        ("/nodeById?peer=x", "peer"),
        ("/listMediaNodes?cursor=abc", "cursor"),
        ("/listMediaNodes?cursor=" + NOT_A_PEER_ID, "cursor"),
        ("/listMediaNodes?limit=0", "limit"),
        ("/listMediaNodes?limit=1001", "limit"),
        ("/listMediaNodes?offset=10", "offset"),
    ],
)
def test_bad_query_parameters(module_node: h.NodeProcess, target: str, parameter: str) -> None:
    status, headers, data = raw_request(module_node, "GET", target)
    js = assert_error(status, headers, data, 400, "invalid_parameter")
    assert js["parameter"] == parameter
    assert parameter in js["error"]


@pytest.mark.parametrize(
    "target",
    [
        "/getMediaNodes?lat=-90&lon=-180",
        "/getMediaNodes?lat=90&lon=180&limit=1000",
        "/getMediaNodes?lat=1e1&lon=-0.0&minScore=0",
        "/getMediaNodes?limit=1&minScore=1",
        "/listMediaNodes?limit=1000&cursor=" + UNKNOWN_PEER_ID,
        "/nodeById?id=" + UNKNOWN_PEER_ID,
    ],
)
def test_boundary_query_values_accepted(module_node: h.NodeProcess, target: str) -> None:
    status, headers, data = raw_request(module_node, "GET", target)
    assert status in (200, 404), data
    assert headers["content-type"].startswith("application/json")
    if status == 404:
        assert json.loads(data)["code"] == "not_found"


def test_metrics_is_prometheus_text(module_node: h.NodeProcess) -> None:
    status, headers, data = raw_request(module_node, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    text = data.decode()
    assert "# TYPE drtc_registry_merges_accepted_total counter" in text
    assert h.parse_metric(text, "drtc_registry_merges_accepted_total") >= 1
    assert h.parse_metric(text, "drtc_registry_records") >= 1
