import Foundation
import PhotoSorterCore
import SQLKit

/// Snapshots of the identity index (`identity_snapshots`, see `CreateIdentitySnapshots`): every look's exact sum
/// of face vectors, face count and owner (`AddFaceLooks`), with the marks of the commits they reflect. A start-up reads the latest complete
/// snapshot of the current generation (one row per person: 100,000 rows instead of a million faces) and catches up
/// on the moves and removals logged and the faces stored after its marks — the catch-up every instance already
/// does after another instance's commits. A bulk change (a reprocess, a large re-cluster) bumps the generation and
/// retires the snapshot: the next load reads every face and a new snapshot follows.
extension IdentityService {
    /// A snapshot is written when the index holds at least this many faces or logged changes it lacks (checked after
    /// start-up and then every `snapshotCheckSeconds`): the catch-up of a start-up stays under some 20,000 rows.
    static let snapshotMinimumBehind = 20_000
    static let snapshotCheckSeconds = 60.0
    /// Persons per insert: 500 sums of 512 floats are 1 MiB, short enough not to hold up a callback's commit.
    static let snapshotChunk = 500

    /// Adds every look of `snapshot` to `builder`, a page at a time.
    func readSnapshot(_ snapshot: IdentityLog.SnapshotMarks, into builder: inout IdentityIndex.Builder, on db: any SQLDatabase) async throws {
        var after: Int64 = .min
        while true {
            let rows = try await IdentityLog.snapshotLooks(snapshot, after: after, limit: Self.loadPageSize, on: db)
            for row in rows {
                guard Embedding.supportedDimensions.contains(row.sum.count) else {
                    throw PhotoSorterError.conflict("identity snapshot \(snapshot.id) holds a \(row.sum.count)-value sum; delete its rows to rebuild it")
                }
                builder.add(sum: row.sum, faceCount: row.faceCount, ofLook: row.look, person: row.person)
            }
            guard let last = rows.last else { return }
            after = last.look
        }
    }

    /// Writes a snapshot when the index holds at least `minimumBehind` faces or logged changes that the latest one
    /// (this instance's or another's) lacks. Returns whether it wrote one.
    @discardableResult
    func saveSnapshotIfBehind(minimumBehind: Int = snapshotMinimumBehind) async throws -> Bool {
        let (generation, embeddingID, changeSeq) = state.withLockedValue { ($0.generation, $0.lastEmbeddingID, $0.lastChangeSeq) }
        let latest = try await IdentityLog.latestSnapshot(of: generation, on: database.sql)
        let behind = (embeddingID - (latest?.lastEmbeddingID ?? 0)) + (changeSeq - (latest?.lastChangeSeq ?? 0))
        guard behind >= minimumBehind else { return false }
        return try await saveSnapshot()
    }

    /// Writes the index as it is now as a new snapshot, in chunks (no long transaction), marks it complete, then
    /// deletes the older ones. One at a time per process; a writer cut off leaves an incomplete snapshot that is
    /// never read and is deleted by the next writer. Returns false when another write was running or the index is
    /// empty.
    @discardableResult
    func saveSnapshot() async throws -> Bool {
        guard snapshotWriter.withLockedValue({ running in defer { running = true }; return !running }) else { return false }
        defer { snapshotWriter.withLockedValue { $0 = false } }
        let captured = state.withLockedValue { $0 }
        let index = captured.index
        guard index.personCount > 0 else { return false }
        let started = ContinuousClock.now
        let sql = database.sql
        var faceCount: Int64 = 0
        let snapshotID = try await IdentityLog.beginSnapshot(generation: captured.generation, lastEmbeddingID: captured.lastEmbeddingID,
                                                             lastChangeSeq: captured.lastChangeSeq, personCount: index.personCount, on: sql)
        let looks = index.lookIDs
        for start in stride(from: 0, to: looks.count, by: Self.snapshotChunk) {
            try Task.checkCancellation()
            let chunk = looks[start..<min(start + Self.snapshotChunk, looks.count)].map { look in
                let profile = index.profile(ofLook: look)!
                return IdentityLog.SnapshotLook(look: look, person: index.owner(ofLook: look), faceCount: profile.count, sum: profile.sum)
            }
            faceCount += Int64(chunk.reduce(0) { $0 + $1.faceCount })
            try await IdentityLog.addSnapshotLooks(chunk, to: snapshotID, on: sql)
        }
        try await IdentityLog.completeSnapshot(snapshotID, faceCount: faceCount, on: sql)
        try await IdentityLog.deleteSnapshots(before: snapshotID, chunk: Self.snapshotChunk * 4, on: sql)
        logger.info("identity snapshot written", metadata: [
            "snapshot_id": "\(snapshotID)", "persons": "\(index.personCount)", "faces": "\(faceCount)", "took": "\(ContinuousClock.now - started)"])
        return true
    }
}
