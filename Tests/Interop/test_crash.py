"""Durability: every record the node acknowledged ("accepted") survives a SIGKILL (or a
SIGTERM) in the middle of a write storm, and the node restarts cleanly on the same data dir."""

from __future__ import annotations

import base64
import re
import shutil
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

import drtc_helpers as h

TOTAL = 2000
STOP_AFTER = 1000
THREADS = 8


def _bodies() -> tuple[list[bytes], list[str]]:
    """Pre-signed, so that the storm is limited by the node, not by Python."""
    idents = [h.Identity.from_seed(1_000_000 + i) for i in range(TOTAL)]
    bodies = [h.signed(ident, region=h.REGIONS[i % 6], geo=((i % 180) - 89.5, (i * 7 % 360) - 179.5), ttl_s=3600)
              for i, ident in enumerate(idents)]
    return bodies, [ident.peer_id for ident in idents]


def _storm_then_signal(node: h.NodeProcess, bodies: list[bytes], sig: int) -> dict[int, dict]:
    """POSTs the bodies from several threads; once STOP_AFTER are acknowledged, sends `sig`.
    Returns index -> response body of every record the node acknowledged as accepted."""
    lock = threading.Lock()
    acked: dict[int, dict] = {}
    other_outcomes: list[tuple[int, int, str]] = []
    failures: list[int] = []  # requests that failed (connection refused/reset)
    enough = threading.Event()
    next_index = iter(range(len(bodies)))

    def worker() -> None:
        session = requests.Session()
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            try:
                r = session.post(node.url + "/register", data=bodies[i],
                                 headers={"Content-Type": "application/x-protobuf"}, timeout=30)
            except requests.RequestException:
                with lock:
                    failures.append(i)
                return  # the node is gone
            with lock:
                if r.status_code == 200 and r.json().get("outcome") == "accepted":
                    acked[i] = r.json()
                    if len(acked) >= STOP_AFTER:
                        enough.set()
                else:
                    other_outcomes.append((i, r.status_code, r.text))

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker) for _ in range(THREADS)]
        assert enough.wait(120), f"only {len(acked)} acks: {other_outcomes[:3]}"
        node.proc.send_signal(sig)
        for f in futures:
            f.result()
    node.proc.wait(timeout=30)

    assert other_outcomes == [], f"answers other than 200 accepted: {other_outcomes[:5]}"
    assert STOP_AFTER <= len(acked) < len(bodies), "the signal did not land in the middle of the storm"
    assert failures, "no request saw the node stop"
    print(f"signal {sig} after {len(acked)} acks; {len(failures)} requests cut off")
    return acked


def _check_survivors(restarted: h.NodeProcess, acked: dict[int, dict], bodies: list[bytes], ids: list[str]) -> None:
    health = restarted.health()
    assert health["status"] == "ok"
    assert health["records"] >= len(acked)
    session = requests.Session()
    missing = []
    for i, ack in acked.items():
        r = session.get(restarted.url + "/nodeById", params={"id": ids[i]}, timeout=10)
        if r.status_code != 200:
            missing.append((i, r.status_code, r.text))
            continue
        got = r.json()
        assert got["hlc"] == ack["hlc"]
        assert base64.b64decode(got["signedRecord"]) == bodies[i]
    assert missing == [], f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"


def test_acknowledged_records_survive_sigterm(node_factory) -> None:
    """Graceful stop under load: in-flight requests finish or are refused, never answered
    with an error; the node exits 0 after its tombstone; nothing acknowledged is lost."""
    node = node_factory.start()
    node.wait_own_record()
    bodies, ids = _bodies()
    acked = _storm_then_signal(node, bodies, signal.SIGTERM)
    assert node.proc.returncode == 0, node.stderr_text()[-2000:]
    assert "tombstone written" in node.stderr_text()
    restarted = node_factory.start(data_dir=node.data_dir)
    _check_survivors(restarted, acked, bodies, ids)
    assert restarted.wait_own_record()["status"] == "active"


def test_acknowledged_records_survive_sigkill(node_factory) -> None:
    node = node_factory.start()
    node.wait_own_record()
    data_dir = node.data_dir
    bodies, ids = _bodies()
    acked = _storm_then_signal(node, bodies, signal.SIGKILL)
    assert node.proc.returncode == -signal.SIGKILL

    restarted = node_factory.start(data_dir=data_dir)
    assert restarted.peer_id == node.peer_id, "the identity changed across the crash"
    log = restarted.stderr_text()
    assert "do not verify" not in log, log
    opened = [line for line in log.splitlines() if "registry opened" in line]
    assert len(opened) == 1, log
    m = re.search(r"\brecords=(\d+)\b", opened[0])
    assert m, opened[0]
    assert int(m.group(1)) >= len(acked) + 1  # + the node's own record

    _check_survivors(restarted, acked, bodies, ids)

    # Nothing was half-written: every record the node lists verifies, and it holds nothing
    # that was never sent.
    session = requests.Session()
    listed = set()
    cursor = None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = session.get(restarted.url + "/listMediaNodes", params=params, timeout=10).json()
        for n in page["nodes"]:
            h.verify_signed_record(base64.b64decode(n["signedRecord"]))
            listed.add(n["nodeId"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert {ids[i] for i in acked} <= listed
    assert listed <= set(ids) | {restarted.peer_id}

    # The restarted node keeps working.
    extra = h.Identity.from_seed(999)
    r = restarted.register(h.signed(extra, geo=(1.0, 2.0)))
    assert r.status_code == 200 and r.json()["outcome"] == "accepted", r.text

    assert restarted.terminate() == 0
    _mdb_stat_check(data_dir / "registry", minimum=len(acked))


def _mdb_stat_check(env_dir, minimum: int) -> None:
    """LMDB's own tool reads the environment and its sub-databases (skipped without lmdb-utils)."""
    if shutil.which("mdb_stat") is None:
        print("mdb_stat not installed (Debian: lmdb-utils); skipping the LMDB integrity check")
        return
    out = subprocess.run(["mdb_stat", "-a", str(env_dir)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    stats = {}
    for block in re.split(r"^Status of ", out.stdout, flags=re.M)[1:]:
        name = block.splitlines()[0].strip()
        entries = re.search(r"Entries: (\d+)", block)
        stats[name] = int(entries.group(1)) if entries else None
    assert stats.get("records") is not None, out.stdout
    print(f"mdb_stat: {stats}")
    assert stats["records"] >= minimum
    # The secondary indexes hold one entry per record (by_geohash: every test record has a position).
    assert stats["by_region"] == stats["records"], stats
    assert stats["by_geohash"] == stats["records"], stats
