#!/usr/bin/env python3
"""Writes Fixtures/rpc-vectors.json: signed RPC calls (Specs/rpc.md) and media tokens
(Specs/orchestrator.md) computed here with Python's `cryptography`, independently of the Swift
code, which must reproduce them byte for byte (Tests/OrchestratorTests/SignedRPCTests.swift).

Run: .venv/bin/python Fixtures/make-rpc-vectors.py
"""
import base64
import datetime
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def key(seed: bytes):
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    raw = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    proto = b"\x08\x01\x12\x20" + raw
    return sk, proto, b58(bytes([0, len(proto)]) + proto)


def rfc3339(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def rpc_vector(seed: bytes, aud_seed: bytes, method: str, path: str, body: str, now_ms: int, nonce: bytes) -> dict:
    sk, proto, _ = key(seed)
    aud = key(aud_seed)[2]
    payload = json.dumps({
        "iss": rfc3339(now_ms), "exp": rfc3339(now_ms + 120_000), "publicKey": base64.b64encode(proto).decode(),
        "aud": aud, "method": method, "path": path, "bodySha256": hashlib.sha256(body.encode()).hexdigest(),
        "nonce": b64url(nonce)}, separators=(",", ":"))
    return {"seedHex": seed.hex(), "aud": aud, "method": method, "path": path, "body": body, "nowMs": now_ms,
            "nonceHex": nonce.hex(), "payload": payload, "signature": base64.b64encode(sk.sign(payload.encode())).decode()}


def token_vector(seed: bytes, aud_seed: bytes, room: str, role: str, iat: int, exp: int) -> dict:
    sk, _, iss = key(seed)
    aud = key(aud_seed)[2]
    claims = json.dumps({"iss": iss, "aud": aud, "room": room, "role": role, "iat": iat, "exp": exp}, separators=(",", ":")).encode()
    token = b64url(claims) + "." + b64url(sk.sign(b"drtc-media-token:" + claims))
    return {"seedHex": seed.hex(), "aud": aud, "room": room, "role": role, "iat": iat, "exp": exp, "token": token}


vectors = {
    "rpc": [
        rpc_vector(bytes([7] * 32), bytes([9] * 32), "POST", "/rpc/v1/rooms", '{"room":"r1"}', 1_733_000_000_000, bytes(range(16))),
        rpc_vector(bytes([7] * 32), bytes([9] * 32), "GET", "/rpc/v1/status", "", 1_733_000_123_456, bytes([0xFF] * 16)),
    ],
    "token": [
        token_vector(bytes([7] * 32), bytes([9] * 32), "r1", "publish", 1_733_000_000_000, 1_733_000_120_000),
        token_vector(bytes([7] * 32), bytes([9] * 32), "live.show-1", "view", 1_733_000_000_000, 1_733_000_120_000),
    ],
}
out = Path(__file__).resolve().parent / "rpc-vectors.json"
out.write_text(json.dumps(vectors, indent=2) + "\n")
print(f"wrote {out}")
