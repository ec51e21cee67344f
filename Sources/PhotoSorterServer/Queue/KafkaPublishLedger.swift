import NIOConcurrencyHelpers

/// The producer side's bookkeeping: which message (token) carries which photo for which batch publication, how
/// each publication ends (every delivery report in), and when this instance last published each READY photo.
final class KafkaPublishLedger: Sendable {
    /// A batch publication whose last delivery report came in.
    struct Outcome: Sendable, Equatable {
        let batch: IngestBatchRef
        let total: Int
        let failed: Int
        let error: String?
        var succeeded: Bool { failed == 0 }
    }

    private struct Publication {
        let batch: IngestBatchRef
        let total: Int
        var remaining: Int
        var failed = 0
        var error: String?
    }

    private struct State {
        var nextToken: UInt = 1
        var messages: [UInt: (photoID: Int64, publication: UInt?)] = [:]
        var publications: [UInt: Publication] = [:]
        /// photo id → when this instance last queued a message for it (removed when it fails or is claimed).
        var published: [Int64: Int64] = [:]
        var failedSinceReset = false
    }

    private let state = NIOLockedValueBox(State())

    /// Starts tracking a batch publication of `count` messages.
    func begin(_ batch: IngestBatchRef, count: Int) -> UInt {
        state.withLockedValue { state in
            let id = state.nextToken
            state.nextToken += 1
            state.publications[id] = Publication(batch: batch, total: count, remaining: count)
            return id
        }
    }

    /// A token for one message about to be produced.
    func register(photoID: Int64, publication: UInt?, at now: Int64) -> UInt {
        state.withLockedValue { state in
            let token = state.nextToken
            state.nextToken += 1
            state.messages[token] = (photoID, publication)
            state.published[photoID] = now
            return token
        }
    }

    /// A delivery report (or a message that could not even be queued: `error` set). Returns the batch outcome when
    /// this was the publication's last report.
    func delivered(_ token: UInt, error: String?) -> Outcome? {
        state.withLockedValue { state in
            guard let message = state.messages.removeValue(forKey: token) else { return nil }
            if error != nil {
                state.published.removeValue(forKey: message.photoID)
                state.failedSinceReset = true
            }
            guard let id = message.publication, var publication = state.publications[id] else { return nil }
            publication.remaining -= 1
            if let error {
                publication.failed += 1
                publication.error = publication.error ?? error
            }
            guard publication.remaining == 0 else {
                state.publications[id] = publication
                return nil
            }
            state.publications.removeValue(forKey: id)
            return Outcome(batch: publication.batch, total: publication.total, failed: publication.failed, error: publication.error)
        }
    }

    /// Whether a READY photo, last changed at `updatedAt`, needs a message now: this instance has not queued one
    /// since it changed, or queued it longer than `staleAfterMs` ago (the broker may have lost it).
    func needsPublishing(_ photoID: Int64, updatedAt: Int64, now: Int64, staleAfterMs: Int64) -> Bool {
        state.withLockedValue { state in
            guard let at = state.published[photoID] else { return true }
            return at < updatedAt || now - at > staleAfterMs
        }
    }

    /// Claimed photos need no message any more.
    func forget(_ photoIDs: [Int64]) {
        state.withLockedValue { state in photoIDs.forEach { state.published.removeValue(forKey: $0) } }
    }

    /// Drops publication times older than `cutoff` (photos claimed elsewhere or long gone).
    func prune(olderThan cutoff: Int64) {
        state.withLockedValue { state in state.published = state.published.filter { $0.value >= cutoff } }
    }

    /// Whether a delivery failed since the last `resetFailures` (the producer is then replaced).
    var hasFailures: Bool { state.withLockedValue { $0.failedSinceReset } }
    func resetFailures() { state.withLockedValue { $0.failedSinceReset = false } }
}
