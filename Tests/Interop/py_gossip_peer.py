#!/usr/bin/env python3
"""A standalone py-libp2p 0.8.1 GossipSub test peer that prints JSON lines.

    python3 py_gossip_peer.py --connect MULTIADDR [--connect ...] --topic drtc/registry/1 \
        [--publish-hex HEX --publish-after SECONDS] [--duration SECONDS]
    python3 py_gossip_peer.py --listen-only --topic drtc/registry/1 --duration 30

Host: Ed25519 identity, TCP on 127.0.0.1 (port 0 unless --listen), Noise only, Yamux only:
the same setup as `py_host()` in test_libp2p_interop.py. Router: GossipSub offering
/meshsub/1.2.0, /meshsub/1.1.0, /meshsub/1.0.0 (in that order of preference; --protocols
overrides), D=6, D_low=4, D_high=12, heartbeat 1 s, adaptive gossip off, strict signing on
(messages are signed, unsigned or badly signed ones are dropped), message id = from + seqno.

stdout carries one flushed JSON object per line (logs go to stderr, only with --verbose):
    {"event":"ready","peerId":...,"addrs":[...],"topic":...,"peers":{peerId: protocol}}
    {"event":"message","from":...,"seqno":hex,"data":hex,"receivedFrom":...,"msgId":hex,...}
    {"event":"published","from":...,"seqno":hex,"data":hex,"msgId":hex,"topic":...}
    {"event":"mesh","topic":...,"peers":[...],"topicPeers":[...]}   (every --mesh-interval s)
    {"event":"error","stage":...,"error":...}
    {"event":"done","messages":N}
Our own publication is not repeated as a "message" event. Exit code 0, or 1 after an error
event (bad address, dial failure, pubsub stream never opened).

py-libp2p notes that matter for interop (read from the 0.8.1 source):
- The wire Message uses `repeated string topicIDs = 4`; the signature covers
  "libp2p-pubsub:" + the Message re-serialised by Python protobuf with only
  from/data/seqno/topicIDs set (fields in number order), and `key` is always attached.
- Every outgoing RPC carries field 4 `senderRecord` (a signed peer record envelope).
- It sends IDONTWANT for every message (no size threshold) to /meshsub/1.2.0+ mesh peers,
  including messages it publishes itself.
- IHAVE/IWANT ids that happen to be ASCII hex are hex-decoded (legacy py peers).
- On a peer's new subscription it replays its message-cache window for that topic directly
  to that peer (non-standard), so a late subscriber can receive older messages.
- Spam protection (on by default) drops more than 10 messages/s per forwarder per topic;
  --no-spam-protection turns it off.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time

import multiaddr
import trio
from libp2p import generate_new_ed25519_identity, new_host
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE, Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX, Yamux
from libp2p.tools.anyio_service import background_trio_service

DEFAULT_PROTOCOLS = "/meshsub/1.2.0,/meshsub/1.1.0,/meshsub/1.0.0"


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, separators=(",", ":")), flush=True)


def b58(peer_id_bytes: bytes) -> str:
    try:
        return ID(peer_id_bytes).to_base58()
    except Exception:
        return "invalid:" + peer_id_bytes.hex()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connect", action="append", default=[], metavar="MULTIADDR",
                   help="peer to dial (/ip4/.../tcp/.../p2p/ID); repeatable")
    p.add_argument("--listen-only", action="store_true",
                   help="dial nobody, just listen (combine with --topic to be dialled)")
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0", help="listen multiaddr")
    p.add_argument("--topic", required=True)
    p.add_argument("--publish-hex", action="append",
                   help="raw bytes to publish, hex-encoded; repeatable (published 0.3 s apart, in order)")
    p.add_argument("--no-subscribe", action="store_true",
                   help="do not subscribe: publish through fanout and receive nothing")
    p.add_argument("--publish-after", type=float, default=1.0,
                   help="seconds after the ready event to publish (default 1)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run after ready")
    p.add_argument("--mesh-interval", type=float, default=1.0, help="mesh event period (0: off)")
    p.add_argument("--protocols", default=DEFAULT_PROTOCOLS,
                   help="comma-separated meshsub protocol ids, most preferred first")
    p.add_argument("--seed-hex", help="32-byte Ed25519 seed (hex) for a fixed PeerID")
    p.add_argument("--connect-timeout", type=float, default=15.0,
                   help="seconds to wait for each dial + pubsub stream")
    p.add_argument("--no-spam-protection", action="store_true",
                   help="disable py-libp2p's 10 msg/s per-peer-per-topic drop")
    p.add_argument("--verbose", action="store_true", help="libp2p DEBUG logs on stderr")
    args = p.parse_args(argv)
    if not args.connect and not args.listen_only:
        p.error("give at least one --connect, or --listen-only")
    if args.publish_hex is not None:
        try:
            args.publish_bytes = [bytes.fromhex(x) for x in args.publish_hex]
        except ValueError:
            p.error("--publish-hex is not valid hex")
    return args


def make_host(seed_hex: str | None):
    """py_host() from test_libp2p_interop.py, with an optional fixed identity."""
    key_pair = ed25519_key_pair(bytes.fromhex(seed_hex)) if seed_hex else generate_new_ed25519_identity()
    noise = NoiseTransport(key_pair, noise_privkey=x25519_key_pair().private_key)
    return new_host(key_pair=key_pair, sec_opt={NOISE: noise}, muxer_opt={YAMUX: Yamux})


def make_router(protocols: list[str], spam_protection: bool) -> GossipSub:
    return GossipSub(
        protocols=protocols,
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=1,            # default 120 s
        adaptive_gossip_enabled=False,   # default True; when on it can raise the heartbeat to 60 s
        spam_protection_enabled=spam_protection,
    )


async def main(args: argparse.Namespace) -> int:
    topic = args.topic
    host = make_host(args.seed_hex)
    router = make_router([p.strip() for p in args.protocols.split(",") if p.strip()],
                         not args.no_spam_protection)
    # strict_signing=True: sign our messages, drop unsigned / badly signed ones.
    # msg_id_constructor defaults to get_peer_and_seqno_msg_id (from_id + seqno).
    pubsub = Pubsub(host, router, strict_signing=True)
    my_id = host.get_id()

    # Who forwarded each message to us: the (sync) topic validator sees (forwarder, msg)
    # before the message reaches the subscription.
    forwarders: dict[bytes, ID] = {}

    def record_forwarder(forwarder: ID, msg) -> bool:
        forwarders[pubsub.get_message_id(msg)] = forwarder
        return True

    exit_code = 0
    received = 0
    async with host.run(listen_addrs=[multiaddr.Multiaddr(args.listen)]):
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            pubsub.set_topic_validator(topic, record_forwarder, False)
            # Subscribing first puts the topic into the hello packet of every new stream.
            # --no-subscribe: publish through fanout only (a publisher that is not a member of
            # the topic's mesh, so the mesh PRUNEing it cannot stop its messages).
            subscription = None if args.no_subscribe else await pubsub.subscribe(topic)

            for addr in args.connect:
                try:
                    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
                    with trio.fail_after(args.connect_timeout):
                        await host.connect(info)
                        ok = await pubsub.ensure_peer_stream(info.peer_id, timeout=args.connect_timeout)
                    if not ok:
                        raise RuntimeError("pubsub stream not opened (peer speaks none of our meshsub ids?)")
                except BaseException as e:  # noqa: BLE001 (report, don't crash)
                    if isinstance(e, trio.Cancelled):
                        raise
                    emit("error", stage="connect", addr=addr, error=f"{type(e).__name__}: {e}")
                    exit_code = 1
            if exit_code:
                emit("done", messages=0)
                return exit_code

            emit("ready", peerId=my_id.to_base58(), addrs=[str(a) for a in host.get_addrs()],
                 topic=topic, protocols=router.get_protocols(),
                 peers={str(p): str(proto) for p, proto in router.peer_protocol.items()})

            async def receive_loop() -> None:
                nonlocal received
                while True:
                    msg = await subscription.get()
                    if msg.from_id == my_id.to_bytes():
                        continue  # our own publication, already reported as "published"
                    mid = pubsub.get_message_id(msg)
                    fwd = forwarders.pop(mid, None)
                    received += 1
                    emit("message", **{
                        "from": b58(msg.from_id),
                        "seqno": msg.seqno.hex(),
                        "data": msg.data.hex(),
                        "receivedFrom": str(fwd) if fwd is not None else None,
                        "topics": list(msg.topicIDs),
                        "msgId": mid.hex(),
                        "signed": bool(msg.signature),
                    })

            async def mesh_loop() -> None:
                while True:
                    emit("mesh", topic=topic,
                         peers=sorted(str(p) for p in router.mesh.get(topic, ())),
                         topicPeers=sorted(str(p) for p in pubsub.peer_topics.get(topic, ())))
                    await trio.sleep(args.mesh_interval)

            async def publish_once() -> None:
                await trio.sleep(args.publish_after)
                # Publishing before any peer is known on the topic would go nowhere: wait (up
                # to 10 s) until a subscribed peer is known.
                with trio.move_on_after(10):
                    while not pubsub.peer_topics.get(topic):
                        await trio.sleep(0.1)
                for i, payload in enumerate(args.publish_bytes):
                    if i:
                        await trio.sleep(0.3)
                    seq_before = pubsub.counter
                    await pubsub.publish(topic, payload)
                    seqno = (seq_before + 1).to_bytes(8, "big")  # Pubsub._next_seqno: counter + 1
                    emit("published", **{"from": my_id.to_base58(), "seqno": seqno.hex(),
                                         "data": payload.hex(), "topic": topic,
                                         "msgId": (my_id.to_bytes() + seqno).hex(),
                                         "meshPeers": sorted(str(p) for p in router.mesh.get(topic, ()))})

            async def stop_on_signal(cancel_scope: trio.CancelScope) -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        cancel_scope.cancel()
                        return

            with trio.move_on_after(args.duration) as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stop_on_signal, scope)
                    if subscription is not None:
                        nursery.start_soon(receive_loop)
                    if args.mesh_interval > 0:
                        nursery.start_soon(mesh_loop)
                    if args.publish_hex is not None:
                        nursery.start_soon(publish_once)
            emit("done", messages=received)
    return exit_code


def run() -> None:
    args = parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.verbose:
        # libp2p's own setup_logging() (LIBP2P_DEBUG unset) detaches the "libp2p" logger.
        libp2p_logger = logging.getLogger("libp2p")
        libp2p_logger.setLevel(logging.DEBUG)
        libp2p_logger.propagate = True
    started = time.monotonic()
    try:
        code = trio.run(main, args)
    except KeyboardInterrupt:
        emit("done", interrupted=True)
        code = 0
    if args.verbose:
        print(f"py_gossip_peer: exit {code} after {time.monotonic() - started:.1f}s", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    run()
