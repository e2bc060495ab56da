// libFuzzer entry point for Yamux: untrusted bytes into a fresh `YamuxSession`.
//
// Not wired into Package.swift yet. To run it, add an executable target holding this file that
// depends on `Libp2p`, then for example:
//   swift build -c debug --product YamuxFrameFuzz -Xswiftc -sanitize=fuzzer,address
//   .build/debug/YamuxFrameFuzz -max_len=4096
//
// Input layout: byte 0 picks the role, the split pattern and the application's reactions;
// the rest is the transport byte stream. Oracles, beyond "no crash":
// - anything thrown is a protocol violation and leaves the session failed;
// - feeding the bytes whole or one byte at a time gives the same events, error and replies;
// - session bookkeeping stays within its configured limits.
import Libp2p

@_cdecl("LLVMFuzzerTestOneInput")
public func yamuxFrameFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let control = data[0]
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))

    var configuration = YamuxConfiguration()
    configuration.maxConcurrentStreams = 8
    configuration.finishedStreamMemory = 4
    configuration.maxQueuedBytesPerSession = 64 * 1024
    var fresh = YamuxSession(role: control & 1 == 0 ? .server : .client, configuration: configuration)
    if control & 2 != 0, fresh.role == .client {
        _ = try? fresh.openStream()
        _ = fresh.takeOutbound()
    }

    // Differential check: whole vs. drip-fed, with no application reactions in between.
    let whole = fuzzFeed(fresh, input, chunk: Int.max)
    let dripped = fuzzFeed(fresh, input, chunk: 1)
    precondition(whole.events == dripped.events, "yamux: events differ between whole and drip-fed input")
    precondition(whole.error == dripped.error, "yamux: error differs between whole and drip-fed input")
    precondition(whole.outbound == dripped.outbound, "yamux: replies differ between whole and drip-fed input")

    // Stateful run: an application reacting to events between chunks.
    var session = fresh
    let chunk = Int(control >> 2) + 1
    var offset = 0
    while offset < input.count {
        let end = min(offset + chunk, input.count)
        let events: [YamuxEvent]
        do {
            events = try session.receive(Array(input[offset..<end]))
        } catch {
            precondition(error.isProtocolViolation, "yamux: receive threw a non-protocol error: \(error)")
            precondition(session.failure == error, "yamux: a violation must fail the session")
            return 0
        }
        offset = end
        for event in events {
            switch event {
            case .streamOpened(let id), .writable(let id):
                _ = try? session.write(Array(repeating: 0xAB, count: 300 * 1024), on: id)
            case .data(let id, let bytes):
                session.consumed(bytes.count, on: id)
            case .remoteClosed(let id):
                session.close(id)
            case .reset, .pingResponse, .goAway:
                break
            }
        }
        if control & 0x80 != 0, let id = session.streamIDs.first { session.reset(id) }
        precondition(session.streamCount <= configuration.maxConcurrentStreams)
        precondition(session.queuedByteCount <= configuration.maxQueuedBytesPerSession)
        _ = session.takeOutbound()
    }
    return 0
}

private func fuzzFeed(_ session: YamuxSession, _ bytes: [UInt8], chunk: Int)
    -> (events: [YamuxEvent], error: YamuxError?, outbound: [UInt8]) {
    var session = session
    var events: [YamuxEvent] = []
    var error: YamuxError?
    var offset = 0
    do {
        while offset < bytes.count {
            let end = bytes.count - offset <= chunk ? bytes.count : offset + chunk
            events += try session.receive(Array(bytes[offset..<end]))
            offset = end
        }
    } catch let thrown {
        error = thrown
        events += session.takeEvents()
    }
    return (events, error, session.takeOutbound())
}
