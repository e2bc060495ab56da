import Gossipsub
import Identity
import Rewards

/// The receipt topic's policy (Specs/rewards.md "Data supplied"): validation of
/// `drtc/receipts/1` messages after the router's StrictSign check, as `QoSGossip.validate` is
/// for the QoS topic.
public enum ReceiptGossip {
    public static let topic = "drtc/receipts/1"
    /// The receipt set's reconciliation protocol: the registry's sessions over receipts.
    public static let syncProtocolID = "/drtc/receipts-sync/1.0.0"
    /// Gossip carries receipts of the current and the two previous epochs (a session's last
    /// part is countersigned after its epoch ends); older ones travel by sync only.
    public static let gossipEpochs: UInt64 = 2

    /// `epochSeconds`: the network's epoch length; receipts of another are refused. A receipt
    /// the local set already holds (learned by sync meanwhile) is still fresh and valid, so it
    /// is accepted and forwarded.
    public static func validate(_ message: GossipMessage, nowMs now: UInt64, epochSeconds: UInt32) -> (ValidationResult, SignedSessionReceipt?) {
        let receipt: SignedSessionReceipt
        do { receipt = try SignedSessionReceipt.verify(encoded: message.data) } catch {
            return (.reject("receipt_" + error.reason), nil)
        }
        if let problem = check(receipt, publisher: message.from, nowMs: now, epochSeconds: epochSeconds) {
            return (.reject("receipt_" + problem.reason), nil)
        }
        return (.accept, receipt)
    }

    /// The checks that apply to gossip only (sync carries old receipts, and the set's validity
    /// must not depend on when a receipt arrives): the network's epoch length, a recent epoch,
    /// and the orchestrator as the message's author.
    public static func check(_ r: SignedSessionReceipt, publisher: [UInt8]?, nowMs now: UInt64, epochSeconds: UInt32) -> ReceiptRejection? {
        if r.receipt.epochSeconds != epochSeconds { return .badSchedule("the network's epochs are \(epochSeconds) s") }
        let epochMs = UInt64(epochSeconds) * 1000
        let current = now / epochMs
        if r.epoch + gossipEpochs < current || r.receipt.startMs > now + epochMs { return .wrongEpoch }
        if publisher != r.receipt.orchestratorID.bytes { return .wrongPublisher }
        return nil
    }

    /// Scoring for the receipt topic: the registry topic's parameters, as for QoS.
    public static func scoreParameters() -> TopicScoreParameters { TopicScoreParameters() }
}
