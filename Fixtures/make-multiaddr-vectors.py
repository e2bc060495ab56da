# Writes multiaddr-vectors.json. Upstream vectors are copied verbatim; derived ones say how they were made.
import json, ipaddress
GO = "multiformats/go-multiaddr multiaddr_test.go (commit 014cd90a97235eee3cf53f336f08d23d5bcc8b4e)"
RUST = "multiformats/rust-multiaddr tests/lib.rs (commit 722b70dd9471e997db3b638bd305c0e5845d05c5)"
PY = "multiformats/py-multiaddr tests/test_transforms.py (commit d7c40c4d91d604b8839b875a3a74f062b025bd5c); value bytes from the test, code/length prefix added here"
RFC = "RFC 5952 section 4 canonical-form rules; binary computed with CPython 3.11 ipaddress.packed"
OWN = "drtc: constructed for this suite"
Q = "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC"
QH = "A503221220D52EBB89D85B02A284948203A62FF28389C57C9F42BEEC4EC20DB76A68911C0B"
binary = []
def b(text, hexs, src): binary.append({"text": text, "hex": hexs.lower(), "source": src})
b("/ip4/127.0.0.1/udp/1234", "047f000001910204d2", GO)
b("/ip4/127.0.0.1/tcp/4321", "047f0000010610e1", GO)
b("/ip4/127.0.0.1/udp/1234/ip4/127.0.0.1/tcp/4321", "047f000001910204d2047f0000010610e1", GO)
for t, h in [
  ("/ip4/1.2.3.4", "0401020304"), ("/ip4/0.0.0.0", "0400000000"),
  ("/ip6/::1", "2900000000000000000000000000000001"),
  ("/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21", "29260100094F819700803ECA6566E80C21"),
  ("/udp/0", "91020000"), ("/tcp/0", "060000"), ("/udp/1234", "910204D2"), ("/tcp/1234", "0604D2"),
  ("/udp/65535", "9102FFFF"), ("/tcp/65535", "06FFFF"),
  ("/p2p/" + Q, QH),
  ("/tcp/1234/tls/http", "0604D2C003E003"),
  ("/p2p/" + Q + "/tcp/1234", QH + "0604D2"),
  ("/ip4/127.0.0.1/udp/0", "047F00000191020000"),
  ("/ip4/127.0.0.1/tcp/1234", "047F0000010604D2"),
  ("/ip4/127.0.0.1/p2p/" + Q, "047F000001" + QH),
  ("/ip4/127.0.0.1/p2p/" + Q + "/tcp/1234", "047F000001" + QH + "0604D2"),
  ("/ip6/2001:8a0:7ac5:4201:3ac9:86ff:fe31:7095/tcp/8000/ws/p2p/" + Q, "29200108A07AC542013AC986FFFE317095061F40DD03" + QH),
  ("/ip6/2001:8a0:7ac5:4201:3ac9:86ff:fe31:7095/tcp/8000/wss/p2p/" + Q, "29200108A07AC542013AC986FFFE317095061F40DE03" + QH),
  ("/ip4/127.0.0.1/tcp/9090/p2p-circuit/p2p/" + Q, "047F000001062382A202" + QH),
  ("/dnsaddr/sjc-1.bootstrap.libp2p.io", "3819736A632D312E626F6F7473747261702E6C69627032702E696F"),
  ("/dnsaddr/sjc-1.bootstrap.libp2p.io/tcp/1234/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
   "3819736A632D312E626F6F7473747261702E6C69627032702E696F0604D2A50322122006B3608AA000274049EB28AD8E793A26FF6FAB281A7D3BD77CD18EB745DFAABB"),
  ("/ip4/127.0.0.1/tcp/127/ws", "047F00000106007FDD03"),
  ("/ip4/127.0.0.1/tcp/127/tls", "047F00000106007FC003"),
  ("/ip4/127.0.0.1/tcp/127/tls/ws", "047F00000106007FC003DD03"),
]: b(t, h, RUST)
def lp(code_hex, value: bytes): return code_hex + "%02x" % len(value) + value.hex()
b("/ip6/1aa1:2bb2:3cc3:4dd4:5ee5:6ff6:7ab7:8ac8", "29" + "1aa12bb23cc34dd45ee56ff67ab78ac8", PY)
b("/tcp/43981", "06abcd", PY)
ar = "موقع.وزارة-الاتصالات.مصر"
b("/dns4/" + ar, lp("36", ar.encode()), PY)
b("/dns4/fußball.example", lp("36", "fußball.example".encode()), PY)
mh = bytes.fromhex("002408011220c635ed472d58edd8b9ee4641ec7557dc806b4886e568491ab00bff1269a7be65")
b("/p2p/12D3KooWPA6ax6t3jqTyGq73Zm1RmwppYqxaXzrtarfcTWGp5Wzx", lp("a503", mh), PY + "; multihash is the CID test's bytes after the 0x01 0x72 CID prefix")
b("/dns4/example.com/tcp/4001/p2p/12D3KooWPA6ax6t3jqTyGq73Zm1RmwppYqxaXzrtarfcTWGp5Wzx",
  lp("36", b"example.com") + "060fa1" + lp("a503", mh), OWN + " from the py 12D3KooW vector")
# go round-trip vectors (text only there); binary assembled from component encodings
b("/ip4/127.0.0.1/udp/1234/quic-v1", "047f000001910204d2cd03", OWN + "; text from " + GO)
ch = "uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g"
import base64
chb = base64.urlsafe_b64decode(ch[1:] + "=" * (-len(ch[1:]) % 4))
b("/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/" + ch, "047f000001910204d2cd03d103" + lp("d203", chb), "text from " + GO + " TestRoundTrip; binary assembled here")
for t, h in [("/ip6/::ffff:127.0.0.1/tcp/111", "29" + "00000000000000000000ffff7f000001" + "06006f")]:
    b(t, h, "text from " + GO + " TestRoundTrip; binary assembled here")
b("/ip4/192.0.2.1/udp/443/webrtc-direct/p2p/" + Q, "04c0000201910201bb9802" + QH, OWN)
b("/dns6/example.com/tcp/443/tls/sni/example.com/ws", lp("37", b"example.com") + "0601bbc003" + lp("c103", b"example.com") + "dd03", OWN)
b("/dns/example.com/udp/4001/quic-v1/noise", lp("35", b"example.com") + "91020fa1cd03c603", OWN)
b("/ip4/1.2.3.4/tcp/1/p2p/" + Q + "/p2p-circuit/p2p/12D3KooWPA6ax6t3jqTyGq73Zm1RmwppYqxaXzrtarfcTWGp5Wzx",
  "0401020304060001" + QH + "a202" + lp("a503", mh), OWN)

canonical = []
def c(inp, text, src): canonical.append({"input": inp, "text": text, "source": src})
for a in ["2001:db8:0:0:1:0:0:1", "2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8:0:1:1:1:1:1",
          "2001:0:0:1:0:0:0:1", "2001:DB8::ABCD", "0:0:0:0:0:0:0:0", "0:0:0:0:0:0:0:1", "1:2:3:4:5:6:7::",
          "::2:3:4:5:6:7:8", "1::8", "fe80:0000::0001", "64:ff9b::192.0.2.33", "::1.2.3.4",
          "1:2:3:4:5:6:1.2.3.4", "1:0:0:2:0:0:0:3", "0:0:1:0:0:0:0:0"]:
    canon = ipaddress.IPv6Address(a).compressed
    c("/ip6/" + a, "/ip6/" + canon, RFC)
    binary.append({"text": "/ip6/" + canon, "hex": "29" + ipaddress.IPv6Address(a).packed.hex(), "source": RFC})
c("/ip6/0:0:0:0:0:ffff:7f00:1/tcp/111", "/ip6/::ffff:127.0.0.1/tcp/111", "RFC 5952 section 5 mixed notation, as go-multiaddr prints it")
c("/ipfs/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP", "/p2p/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP", GO + " TestIPFSvP2P")
c("/ip4/127.0.0.1/tcp/1234/", "/ip4/127.0.0.1/tcp/1234", GO + " TestEqual")
c("/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV", "/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV", GO + " good list")
c("/ip4/127.0.0.1/tcp/127/noise", "/ip4/127.0.0.1/tcp/127/noise", GO + " good list")
c("/ip4/127.0.0.1/udp/1234/quic", "/ip4/127.0.0.1/udp/1234/quic", GO + " good list")
c("/ip4/127.0.0.1/tcp/127/webrtc", "/ip4/127.0.0.1/tcp/127/webrtc", GO + " good list")
c("/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy",
  "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/u1QEQOFj2IjCsPJFfMAxmQxLGPw", GO + " good list; re-encoded as base64url like go does")
c("/tcp/0080", "/tcp/80", OWN + " (go accepts leading zeros in ports via strconv)")

invalid_text = []
def it(s, src): invalid_text.append({"input": s, "source": src})
for s in ["/ip4", "/ip4/::1", "/ip4/fdpsofodsajfdoisa", "/ip6", "/udp", "/tcp", "/udp/65536", "/tcp/65536",
          "/quic-v1/65536", "/ip4/127.0.0.1/udp/jfodsajfidosajfoidsa", "/ip4/127.0.0.1/udp",
          "/ip4/127.0.0.1/tcp/jfodsajfidosajfoidsa", "/ip4/127.0.0.1/tcp", "/ip4/127.0.0.1/quic/1234",
          "/ip4/127.0.0.1/quic-v1/1234", "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash",
          "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmp",
          "/ip4/127.0.0.1/ipfs", "/ip4/127.0.0.1/ipfs/tcp", "/ip4/127.0.0.1/p2p", "/ip4/127.0.0.1/p2p/tcp",
          "/ip4/1.2.3.4/tcp/-1", "/", "", "/p2p/QmxoHT6iViN5xAjoz1VZ553cL31U9F94ht3QvWR1FrEbZY",
          "/ip6zone/", "/ip4/127.0.0.1/tcp/9090/http/p2p-webcrt-direct"]:
    it(s, GO + " TestConstructFails")
it("/p2p-circuit/50", RUST + " construct_fail")
for s in ["/ip4/300.1.1.1", "/ip4/01.2.3.4", "/ip4/1.2.3", "/ip4/1.2.3.4.5", "/ip6/1:::2", "/ip6/1::2::3",
          "/ip6/12345::", "/ip6/1:2:3:4:5:6:7:8:9", "/ip6/1:2:3:4:5:6:7:8::", "/ip6/::1:2:3:4:5:6:7:8",
          "/ip6/fe80::1%eth0", "/ip6/1.2.3.4::", "/ip6/:1::", "/ip6/::g", "/dns4/", "/dns4//tcp/1",
          "ip4/1.2.3.4", "/foo/bar", "/ip4/1.2.3.4//tcp/1", "/tcp/+80", "/tcp/ 80", "/dns4/a\u0001b",
          "/certhash/uAAE", "/certhash/uAAB", "/certhash/xABC", "/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5m0"]:
    it(s, OWN)

invalid_binary = []
def ib(h, src): invalid_binary.append({"hex": h, "source": src})
ib("a503221221c05877cbae039d70a5e600ea02c6f9f2942439285c9e344e26f8d280c850fad6", GO + " TestInvalidP2PAddrBytes")
ib("", GO + " TestEmptyMultiaddr")
ib("01020304", RUST + " from_bytes_fail")
ib("cd020c0d", PY + " (unknown code 333)")
for h in ["047f00", "0680", "06", "9102", "8000", "80", "ffffffffffffffffff01", "3600", "360561", "3605", "36",
          "3602612f", "360161ff", "a50300", "a503020000", "d20301", "0401020304ff",
          "04010203040680"]:
    ib(h, OWN)

out = {
  "description": "Multiaddr test vectors. 'binary': text <-> hex, both directions exact. 'canonical': input parses and prints as text. 'invalidText'/'invalidBinary': must be rejected.",
  "binary": binary, "canonical": canonical, "invalidText": invalid_text, "invalidBinary": invalid_binary,
}
import os
json.dump(out, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "multiaddr-vectors.json"), "w"), ensure_ascii=False, indent=1)
print(len(binary), len(canonical), len(invalid_text), len(invalid_binary))
