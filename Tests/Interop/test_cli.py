"""The `drtc` command line: identity commands, refusal to start on a bad identity or bad
settings, settings precedence, and graceful shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import stat
from pathlib import Path

import pytest

import drtc_helpers as h

PEER_ID_RE = re.compile(r"^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_id_prints_the_running_nodes_peer_id(node: h.NodeProcess) -> None:
    out = h.run_cli(["id", "--data-dir", str(node.data_dir)])
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert PEER_ID_RE.match(first), out.stdout
    assert first == node.peer_id == node.health()["peerId"]
    # DRTC_DATA_DIR is honoured too.
    out = h.run_cli(["id"], env={"DRTC_DATA_DIR": str(node.data_dir)})
    assert out.returncode == 0 and out.stdout.splitlines()[0] == node.peer_id, out.stderr


def test_id_without_identity_fails(cli_data_dir) -> None:
    d = cli_data_dir()
    out = h.run_cli(["id", "--data-dir", str(d)])
    assert out.returncode != 0
    assert "keygen" in out.stderr, out.stderr
    assert out.stdout == ""
    assert not d.exists(), "`drtc id` must not create anything"


def test_keygen_creates_a_private_identity(cli_data_dir, node_factory) -> None:
    d = cli_data_dir()
    out = h.run_cli(["keygen", "--data-dir", str(d)])
    assert out.returncode == 0, out.stderr
    peer = out.stdout.splitlines()[0]
    assert PEER_ID_RE.match(peer), out.stdout
    key = d / "identity.key"
    assert key.is_file()
    assert mode_of(key) == 0o600
    assert mode_of(d) & 0o077 == 0, f"data dir mode {oct(mode_of(d))}"
    assert not (d / "identity.key.tmp").exists()

    # A second keygen keeps the existing identity.
    content = key.read_bytes()
    again = h.run_cli(["keygen", "--data-dir", str(d)])
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == peer
    assert "already exists" in again.stderr
    assert key.read_bytes() == content

    assert h.run_cli(["id", "--data-dir", str(d)]).stdout.splitlines()[0] == peer
    # A node started on that data dir is that identity.
    n = node_factory.start(data_dir=d)
    assert n.peer_id == peer == n.health()["peerId"]

    # Two keygens in two dirs make two identities.
    other = h.run_cli(["keygen", "--data-dir", str(cli_data_dir())])
    assert other.returncode == 0 and other.stdout.splitlines()[0] != peer


def _start_expecting_failure(data_dir: Path, *, args: list[str] | None = None, env: dict | None = None) -> tuple[int, str, str]:
    cmd = args if args is not None else h.node_args(data_dir)
    out = h.run_cli(cmd, env=env, timeout=30)
    assert "API listening" not in out.stdout, out.stdout
    return out.returncode, out.stdout, out.stderr


def test_node_refuses_group_readable_identity(cli_data_dir) -> None:
    d = cli_data_dir()
    assert h.run_cli(["keygen", "--data-dir", str(d)]).returncode == 0
    key = d / "identity.key"
    os.chmod(key, 0o644)
    code, _, err = _start_expecting_failure(d)
    assert code != 0
    assert "chmod 600" in err, err
    assert str(key) in err
    assert not (d / "registry").exists(), "the node opened its registry with a leaked key"
    # `drtc id` refuses it too, and nothing changed the file.
    out = h.run_cli(["id", "--data-dir", str(d)])
    assert out.returncode != 0 and "chmod" in out.stderr
    assert mode_of(key) == 0o644
    # After following the advice the identity loads.
    os.chmod(key, 0o600)
    out_ok = h.run_cli(["id", "--data-dir", str(d)])
    assert out_ok.returncode == 0, out_ok.stderr


@pytest.mark.parametrize("content", [b"", b"not a key at all\n", b"\x08\x01\x12\x03abc"], ids=["empty", "text", "truncated"])
def test_node_refuses_corrupt_identity(cli_data_dir, content: bytes) -> None:
    d = cli_data_dir()
    d.mkdir(mode=0o700)
    key = d / "identity.key"
    key.write_bytes(content)
    os.chmod(key, 0o600)
    code, _, err = _start_expecting_failure(d)
    assert code != 0
    assert str(key) in err, err
    assert "drtc keygen" in err and "backup" in err, err  # says what to do
    assert key.read_bytes() == content, "the damaged key was overwritten"


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--geo", "95,10"),
        ("--geo", "45,181"),
        ("--geo", "nope"),
        ("--region", "XX"),
        ("--api", "nope"),
        ("--api", "127.0.0.1:70000"),
        ("--listen", "127.0.0.1:4001"),
        ("--ttl", "5"),
        ("--log-level", "loud"),
        ("--qos", "maybe"),
        ("--qos-epoch", "5"),
        ("--qos-test-duration", "1400"),
        ("--qos-sample-interval", "0.1"),
        ("--qos-bitrate-kbps", "10"),
    ],
)
def test_invalid_flag_values_exit_2_naming_the_flag(cli_data_dir, flag: str, value: str) -> None:
    d = cli_data_dir()
    args = ["node", "--data-dir", str(d), "--api", "127.0.0.1:0", f"{flag}={value}"]
    if flag != "--listen":
        args.append(f"--listen=/ip4/127.0.0.1/tcp/{h.free_port()}")
    code, _, err = _start_expecting_failure(d, args=args)
    assert code == 2, err
    assert flag in err, err
    assert value in err or value.rsplit(":", 1)[-1] in err, err  # quotes what was wrong


def test_unknown_flag_exits_2(cli_data_dir) -> None:
    code, _, err = _start_expecting_failure(cli_data_dir(), args=["node", "--no-such-flag"])
    assert code == 2
    assert "--no-such-flag" in err


def _own_region(n: h.NodeProcess) -> str:
    return n.wait_own_record()["region"]


def test_settings_precedence_flag_env_config(tmp_path: Path, node_factory) -> None:
    config = tmp_path / "drtc.json"
    config.write_text(json.dumps({"region": "ASI", "geo": "35.68,139.69", "ttl": 600}))

    # --config alone.
    n = node_factory.start(region=None, geo=None, extra=["--config", str(config)])
    own = n.wait_own_record()
    assert own["region"] == "ASI"
    assert (own["latitude"], own["longitude"]) == (35.68, 139.69)
    assert own["ttlSeconds"] == 600
    assert n.terminate() == 0

    # DRTC_REGION beats the file (the file still supplies the rest).
    n = node_factory.start(region=None, geo=None, extra=["--config", str(config)], env={"DRTC_REGION": "SAM"})
    own = n.wait_own_record()
    assert own["region"] == "SAM" and own["ttlSeconds"] == 600
    assert n.terminate() == 0

    # The flag beats both.
    n = node_factory.start(region="OCE", geo=None, extra=["--config", str(config)], env={"DRTC_REGION": "SAM"})
    assert _own_region(n) == "OCE"
    assert n.terminate() == 0

    # DRTC_CONFIG names the file when --config is absent.
    n = node_factory.start(region=None, geo=None, env={"DRTC_CONFIG": str(config)})
    assert _own_region(n) == "ASI"
    assert n.terminate() == 0

    # With none of them: the default region.
    n = node_factory.start(region=None, geo=None)
    assert _own_region(n) == "EU"


def test_bad_config_file_exits_2(tmp_path: Path, cli_data_dir) -> None:
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"regoin": "EU"}))
    code, _, err = _start_expecting_failure(cli_data_dir(), args=["node", "--config", str(unknown), "--api", "127.0.0.1:0"])
    assert code == 2 and "regoin" in err, err
    bad_value = tmp_path / "bad.json"
    bad_value.write_text(json.dumps({"region": "XX"}))
    code, _, err = _start_expecting_failure(cli_data_dir(), args=["node", "--config", str(bad_value), "--api", "127.0.0.1:0"])
    assert code == 2 and "--region" in err, err
    code, _, err = _start_expecting_failure(cli_data_dir(), args=["node", "--config", str(tmp_path / "absent.json"), "--api", "127.0.0.1:0"])
    assert code == 2 and "absent.json" in err, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_writes_tombstone(node_factory, sig: int) -> None:
    n = node_factory.start()
    n.wait_own_record()
    n.proc.send_signal(sig)
    assert n.proc.wait(timeout=30) == 0, n.stderr_text()
    assert "tombstone" in n.stderr_text()

    # On restart the node loads its tombstone from disk, then supersedes it with a fresh
    # ACTIVE record.
    again = node_factory.start(data_dir=n.data_dir)
    assert again.peer_id == n.peer_id
    own = again.wait_own_record()
    assert own["status"] == "active"
    assert again.terminate() == 0


def test_api_port_in_use_fails(node: h.NodeProcess, cli_data_dir) -> None:
    busy = node.url.removeprefix("http://")
    code, _, err = _start_expecting_failure(cli_data_dir(), args=[
        "node", "--data-dir", str(cli_data_dir()), "--api", busy, f"--listen=/ip4/127.0.0.1/tcp/{h.free_port()}"])
    assert code != 0
    assert "Address already in use" in err, err
    assert node.health()["status"] == "ok"


def test_api_port_in_use_message_names_the_address(node: h.NodeProcess, cli_data_dir) -> None:
    busy = node.url.removeprefix("http://")
    d = cli_data_dir()
    _, _, err = _start_expecting_failure(d, args=[
        "node", "--data-dir", str(d), "--api", busy, f"--listen=/ip4/127.0.0.1/tcp/{h.free_port()}"])
    assert busy in err or "--api" in err, err


def test_api_port_in_use_publishes_nothing(node: h.NodeProcess, cli_data_dir) -> None:
    busy = node.url.removeprefix("http://")
    d = cli_data_dir()
    _, _, err = _start_expecting_failure(d, args=[
        "node", "--data-dir", str(d), "--api", busy, f"--listen=/ip4/127.0.0.1/tcp/{h.free_port()}"])
    assert "published own record" not in err and "tombstone" not in err, err


def test_second_node_on_same_data_dir_refuses(node: h.NodeProcess) -> None:
    out = h.run_cli(h.node_args(node.data_dir), timeout=60)
    assert out.returncode != 0
    assert "API listening" not in out.stdout
    assert "in use by another drtc process" in out.stderr, out.stderr
