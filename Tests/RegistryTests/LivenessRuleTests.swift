import Testing

@testable import Registry

@Suite struct LivenessRuleTests {
    @Test func smallMeshesKeepTheConfiguredValues() {
        #expect(LivenessRule.schedule(baseInterval: 30, baseTTL: 90, liveRecords: 1) == (30, 90))
        #expect(LivenessRule.schedule(baseInterval: 30, baseTTL: 90, liveRecords: 128) == (30, 90))
        #expect(LivenessRule.schedule(baseInterval: 2, baseTTL: 6, liveRecords: 20) == (2, 6))
    }

    /// The per-peer refresh load N / T stays at 128 / base however large the mesh.
    @Test func largeMeshesBoundThePerPeerRefreshRate() {
        for n in [129, 500, 1_000, 5_000, 10_000, 50_000, 92_160] {
            let (interval, ttl) = LivenessRule.schedule(baseInterval: 30, baseTTL: 90, liveRecords: n)
            #expect(Double(n) / Double(interval) <= 128.0 / 30.0 + 1e-9)
            #expect(Double(n) / Double(interval) > 128.0 / 30.0 * 0.97)  // whole seconds round up
            #expect(ttl == interval * 3)
        }
        #expect(LivenessRule.schedule(baseInterval: 30, baseTTL: 90, liveRecords: 1_000) == (235, 705))
        #expect(LivenessRule.schedule(baseInterval: 30, baseTTL: 90, liveRecords: 50_000) == (11_719, 35_157))
    }

    @Test func theIntervalIsCapped() {
        let (interval, ttl) = LivenessRule.schedule(baseInterval: 30, baseTTL: 90, liveRecords: 10_000_000)
        #expect(interval == LivenessRule.maxIntervalSeconds)
        #expect(ttl == 3 * LivenessRule.maxIntervalSeconds)
        // Whatever the mesh size, the TTL stays within what every replica accepts (7 days).
        #expect(ttl <= 7 * 86_400)
    }
}
