import NIOConcurrencyHelpers

/// One consumed message: the photo its key names (nil when the key is not a photo id) and where it sits.
struct ConsumedMessage: Sendable, Equatable {
    let photoID: Int64?
    let partition: Int32
    let offset: Int64
    /// The assignment of its partition it was consumed under; once the partition is revoked its offset is no
    /// longer this member's to commit.
    let epoch: Int
}

/// The consumer's bookkeeping, shared by the poll thread and `claim`: messages not yet claimed, messages claimed
/// but not yet handed over, and per partition the offset that may be committed — the lowest offset not yet
/// settled (claimed photos settle when handed over, skipped ones at once), so a commit never passes a photo
/// that the ML service has not accepted.
final class KafkaConsumerBook: Sendable {
    private struct Partition {
        let epoch: Int
        var unsettled: Set<Int64> = []
        var first: Int64 = -1       // first offset seen under this epoch
        var next: Int64 = -1        // highest offset seen + 1
        var committed: Int64 = -1   // last position committed (or being committed)
        var position: Int64 { unsettled.min() ?? next }
    }

    private struct State {
        /// Counts assignments and revocations (the poll thread re-checks its pause after each).
        var generation = 0
        var nextEpoch = 1
        var partitions: [Int32: Partition] = [:]
        var buffer: [ConsumedMessage] = []
        var held: [Int64: [ConsumedMessage]] = [:]
    }

    private let state = NIOLockedValueBox(State())

    var generation: Int { state.withLockedValue { $0.generation } }
    var bufferedCount: Int { state.withLockedValue { $0.buffer.count } }

    /// A message from the poll thread. Returns whether the buffer was empty before (a reason to wake the workers).
    @discardableResult
    func received(photoID: Int64?, partition: Int32, offset: Int64) -> Bool {
        state.withLockedValue { state in
            if state.partitions[partition] == nil {
                // Consumed before the rebalance callback named it (not expected): tracked under a new epoch.
                state.partitions[partition] = Partition(epoch: state.nextEpoch)
                state.nextEpoch += 1
            }
            var progress = state.partitions[partition]!
            let message = ConsumedMessage(photoID: photoID, partition: partition, offset: offset, epoch: progress.epoch)
            progress.unsettled.insert(offset)
            if progress.first < 0 { progress.first = offset }
            progress.next = max(progress.next, offset + 1)
            state.partitions[partition] = progress
            let wasEmpty = state.buffer.isEmpty
            state.buffer.append(message)
            return wasEmpty
        }
    }

    /// Up to `limit` unclaimed messages, oldest first.
    func take(_ limit: Int) -> [ConsumedMessage] {
        state.withLockedValue { state in
            let taken = Array(state.buffer.prefix(max(0, limit)))
            state.buffer.removeFirst(taken.count)
            return taken
        }
    }

    /// Messages `take` gave out that could not be claimed (the database was unavailable): first in line again.
    func putBack(_ messages: [ConsumedMessage]) {
        state.withLockedValue { state in
            let current = messages.filter { state.partitions[$0.partition]?.epoch == $0.epoch }
            state.buffer.insert(contentsOf: current, at: 0)
        }
    }

    /// Claimed: settled when `handedOver` names the photo.
    func hold(_ messages: [ConsumedMessage]) {
        state.withLockedValue { state in
            for message in messages {
                guard let photoID = message.photoID else { Self.settle(message, in: &state); continue }
                state.held[photoID, default: []].append(message)
            }
        }
    }

    /// Nothing to do for these (their photo was not READY, or the key named no photo): settled now.
    func settle(_ messages: [ConsumedMessage]) {
        state.withLockedValue { state in messages.forEach { Self.settle($0, in: &state) } }
    }

    /// The photos were handed over: their messages are settled.
    func handedOver(_ photoIDs: [Int64]) {
        state.withLockedValue { state in
            for id in photoIDs {
                state.held.removeValue(forKey: id)?.forEach { Self.settle($0, in: &state) }
            }
        }
    }

    private static func settle(_ message: ConsumedMessage, in state: inout State) {
        guard state.partitions[message.partition]?.epoch == message.epoch else { return }
        state.partitions[message.partition]?.unsettled.remove(message.offset)
    }

    /// Positions to commit now (partitions whose position moved past what was consumed first and since the last
    /// commit), marked committed.
    func positionsToCommit() -> [(partition: Int32, offset: Int64)] {
        state.withLockedValue { state in
            var due: [(partition: Int32, offset: Int64)] = []
            for (number, var progress) in state.partitions where progress.next >= 0 && progress.position > max(progress.committed, progress.first) {
                progress.committed = progress.position
                state.partitions[number] = progress
                due.append((number, progress.position))
            }
            return due.sorted { $0.partition < $1.partition }
        }
    }

    /// A commit did not go through: those partitions are committed again at the next round.
    func commitFailed(_ partitions: [Int32]) {
        state.withLockedValue { state in
            for number in partitions { state.partitions[number]?.committed = -1 }
        }
    }

    /// Partitions assigned to this member (all of them after an eager rebalance, the added ones after a cooperative one).
    func assigned(_ partitions: [Int32]) {
        state.withLockedValue { state in
            state.generation += 1
            for number in partitions {
                state.buffer.removeAll { $0.partition == number }
                state.partitions[number] = Partition(epoch: state.nextEpoch)
                state.nextEpoch += 1
            }
        }
    }

    /// The positions to commit before `partitions` go to another member.
    func revoking(_ partitions: [Int32]) -> [(partition: Int32, offset: Int64)] {
        positionsToCommit().filter { partitions.contains($0.partition) }
    }

    /// `partitions` are gone: their unclaimed messages are dropped (the next owner consumes them from the committed
    /// position), and their claimed ones will not be committed by this member.
    func revoked(_ partitions: [Int32]) {
        state.withLockedValue { state in
            state.generation += 1
            let gone = Set(partitions)
            state.buffer.removeAll { gone.contains($0.partition) }
            for number in gone { state.partitions.removeValue(forKey: number) }
            state.held = state.held.compactMapValues { messages in
                let kept = messages.filter { !gone.contains($0.partition) }
                return kept.isEmpty ? nil : kept
            }
        }
    }
}
