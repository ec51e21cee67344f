import Foundation
import PhotoSorterCore
import SQLKit

/// Snapshots of the identity index (`identity_snapshots`, see `CreateIdentitySnapshots`): every person's exact sum
/// of face vectors and face count, with the marks of the commits they reflect. A start-up reads the latest complete
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

    /// Where a snapshot's catch-up starts.
    struct SnapshotMarks: Sendable, Equatable {
        let id: Int64
        let lastEmbeddingID: Int64
        let lastChangeSeq: Int64
    }

    /// The latest complete snapshot of `generation`, if any.
    func latestSnapshot(of generation: Int64, on db: any SQLDatabase) async throws -> SnapshotMarks? {
        try await db.raw("""
            SELECT id, last_embedding_id, last_change_seq FROM identity_snapshots
            WHERE complete = \(bind: true) AND generation = \(bind: generation) ORDER BY id DESC LIMIT 1
            """).first().map {
            SnapshotMarks(id: try $0.decode(column: "id", as: Int64.self), lastEmbeddingID: try $0.decode(column: "last_embedding_id", as: Int64.self),
                          lastChangeSeq: try $0.decode(column: "last_change_seq", as: Int64.self))
        }
    }

    /// Adds every person of `snapshot` to `builder`, a page at a time.
    func readSnapshot(_ snapshot: SnapshotMarks, into builder: inout IdentityIndex.Builder, on db: any SQLDatabase) async throws {
        var after: Int64 = .min
        while true {
            let rows = try await db.raw("""
                SELECT person_id, face_count, vector_sum FROM identity_snapshot_persons
                WHERE snapshot_id = \(bind: snapshot.id) AND person_id > \(bind: after) ORDER BY person_id LIMIT \(bind: Self.loadPageSize)
                """).all()
            for row in rows {
                let sum = EmbeddingCodec.floats(from: try row.decode(column: "vector_sum", as: Data.self))
                guard Embedding.supportedDimensions.contains(sum.count) else {
                    throw PhotoSorterError.conflict("identity snapshot \(snapshot.id) holds a \(sum.count)-value sum; delete its rows to rebuild it")
                }
                builder.add(sum: sum, faceCount: try row.decode(column: "face_count", as: Int.self), of: try row.decode(column: "person_id", as: Int64.self))
            }
            guard let last = rows.last else { return }
            after = try last.decode(column: "person_id", as: Int64.self)
        }
    }

    /// Writes a snapshot when the index holds at least `minimumBehind` faces or logged changes that the latest one
    /// (this instance's or another's) lacks. Returns whether it wrote one.
    @discardableResult
    func saveSnapshotIfBehind(minimumBehind: Int = snapshotMinimumBehind) async throws -> Bool {
        let (generation, embeddingID, changeSeq) = state.withLockedValue { ($0.generation, $0.lastEmbeddingID, $0.lastChangeSeq) }
        let latest = try await latestSnapshot(of: generation, on: database.sql)
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
        let snapshotID = try await sql.raw("""
            INSERT INTO identity_snapshots (generation, last_embedding_id, last_change_seq, person_count, face_count, complete, created_at)
            VALUES (\(bind: captured.generation), \(bind: captured.lastEmbeddingID), \(bind: captured.lastChangeSeq), \(bind: index.personCount),
                0, \(bind: false), \(bind: nowMs()))
            RETURNING id
            """).first()!.decode(column: "id", as: Int64.self)
        let persons = index.personIDs
        for start in stride(from: 0, to: persons.count, by: Self.snapshotChunk) {
            try Task.checkCancellation()
            var insert = sql.insert(into: "identity_snapshot_persons").columns("snapshot_id", "person_id", "face_count", "vector_sum")
            for person in persons[start..<min(start + Self.snapshotChunk, persons.count)] {
                let profile = index.profiles[person]!
                faceCount += Int64(profile.count)
                insert = insert.values(SQLBind(snapshotID), SQLBind(person), SQLBind(profile.count), SQLBind(EmbeddingCodec.bytes(of: profile.sum)))
            }
            try await insert.run()
        }
        try await sql.raw("""
            UPDATE identity_snapshots SET complete = \(bind: true), face_count = \(bind: faceCount) WHERE id = \(bind: snapshotID)
            """).run()
        try await deleteSnapshots(before: snapshotID)
        logger.info("identity snapshot written", metadata: [
            "snapshot_id": "\(snapshotID)", "persons": "\(index.personCount)", "faces": "\(faceCount)", "took": "\(ContinuousClock.now - started)"])
        return true
    }

    /// Deletes snapshots older than `id`, complete or not (and rows of writers that were cut off), in chunks.
    private func deleteSnapshots(before id: Int64) async throws {
        let sql = database.sql
        for row in try await sql.raw("SELECT DISTINCT snapshot_id FROM identity_snapshot_persons WHERE snapshot_id < \(bind: id)").all() {
            let old = try row.decode(column: "snapshot_id", as: Int64.self)
            while true {
                let persons = try await sql.raw("""
                    SELECT person_id FROM identity_snapshot_persons WHERE snapshot_id = \(bind: old) ORDER BY person_id LIMIT \(bind: Self.snapshotChunk * 4)
                    """).all().map { try $0.decode(column: "person_id", as: Int64.self) }
                if persons.isEmpty { break }
                try await sql.raw("""
                    DELETE FROM identity_snapshot_persons WHERE snapshot_id = \(bind: old) AND person_id IN (\(binds: persons))
                    """).run()
            }
        }
        try await sql.raw("DELETE FROM identity_snapshots WHERE id < \(bind: id)").run()
    }
}
