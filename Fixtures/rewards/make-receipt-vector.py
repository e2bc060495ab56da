#!/usr/bin/env python3
"""Writes Fixtures/rewards/session-receipt.json: a SessionReceipt (Specs/rewards.proto) signed by
a fixed media-node key and countersigned by a fixed orchestrator key, encoded and signed here
independently of drtc's Swift code (hand-written protobuf, Python `cryptography` Ed25519).
`RewardsTests` rebuilds it from the fields and must produce the same bytes.

Run: .venv/bin/python Fixtures/rewards/make-receipt-vector.py
"""
import hashlib
import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number, value):
    return b"" if value == 0 else varint(number << 3) + varint(value)


def field_bytes(number, value):
    return b"" if len(value) == 0 else varint(number << 3 | 2) + varint(len(value)) + value


def peer_id(public_key):
    # identity multihash of the libp2p PublicKey protobuf (Type=Ed25519, Data=key)
    proto = b"\x08\x01\x12\x20" + public_key
    mh = b"\x00" + varint(len(proto)) + proto
    n = int.from_bytes(mh, "big")
    s = ""
    while n:
        n, r = divmod(n, 58)
        s = B58[r] + s
    return "1" * (len(mh) - len(mh.lstrip(b"\x00"))) + s


def key(seed):
    k = Ed25519PrivateKey.from_private_bytes(seed)
    return k, k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


node_seed = bytes(range(32))
orch_seed = bytes(range(32, 64))
node_key, node_pub = key(node_seed)
orch_key, orch_pub = key(orch_seed)

tokens = [b"token-a", b"token-b", b"token-c"]
token_hashes = sorted(hashlib.sha256(t).digest() for t in tokens)
token_digest = hashlib.sha256(b"".join(token_hashes)).digest()

fields = {
    "room": "demo-room.1",
    "epochSeconds": 30,
    "epoch": 58_831_234,
    "startMs": 58_831_234 * 30_000 + 4_500,
    "endMs": 58_831_235 * 30_000,
    "role": 1,  # RECEIPT_ROLE_ORIGIN
    "publishersCenti": 100,
    "viewersCenti": 250,
    "bytesForwarded": 4_321_987,
}
body = (
    field_bytes(1, node_pub)
    + field_bytes(2, orch_pub)
    + field_bytes(3, fields["room"].encode())
    + field_varint(4, fields["epochSeconds"])
    + field_varint(5, fields["epoch"])
    + field_varint(6, fields["startMs"])
    + field_varint(7, fields["endMs"])
    + field_varint(8, fields["role"])
    + field_varint(9, fields["publishersCenti"])
    + field_varint(10, fields["viewersCenti"])
    + field_bytes(11, token_digest)
    + field_varint(12, fields["bytesForwarded"])
)
node_sig = node_key.sign(b"drtc-session-receipt:" + body)
orch_sig = orch_key.sign(b"drtc-receipt-countersign:" + body + node_sig)
node_signed = field_bytes(1, body) + field_bytes(2, node_sig)
encoded = node_signed + field_bytes(3, orch_sig)

# b = b_av * n_p * ((n_p - 1) + n_c) * m, b_av = 700 kbit/s, in MB
m = (fields["endMs"] - fields["startMs"]) / 60_000
np_, nc = fields["publishersCenti"] / 100, fields["viewersCenti"] / 100
b_mb = 700 * 60 * max(0.0, np_ * ((np_ - 1) + nc)) * m / 8 / 1000

vector = {
    "description": "SignedSessionReceipt (Specs/rewards.proto): node key from nodeSeed signs, orchestrator key from orchestratorSeed countersigns; tokens are the token texts whose SHA-256s token_digest commits to; dataSuppliedMB at b_av = 700 kbit/s",
    "nodeSeed": node_seed.hex(),
    "orchestratorSeed": orch_seed.hex(),
    "node": peer_id(node_pub),
    "orchestrator": peer_id(orch_pub),
    "tokens": [t.decode() for t in tokens],
    "fields": fields,
    "tokenDigest": token_digest.hex(),
    "body": body.hex(),
    "nodeSignature": node_sig.hex(),
    "orchestratorSignature": orch_sig.hex(),
    "nodeSigned": node_signed.hex(),
    "encoded": encoded.hex(),
    "syncId": hashlib.sha256(encoded).digest()[:16].hex(),
    "dataSuppliedMB": round(b_mb, 6),
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "session-receipt.json")
with open(path, "w") as f:
    json.dump(vector, f, indent=2, sort_keys=True)
    f.write("\n")
print(path)
