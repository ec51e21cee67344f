import Foundation
import PhotoSorterCore
import SQLKit

/// The one writer of what keeps several instances' identity indexes in step and callbacks idempotent:
/// - the change log (`identity_changes`): every face a correction, re-cluster or changed file moved or removed,
///   with a sequence number each instance catches up from;
/// - the callback log (`processed_callbacks`): the answer to each callback, replayed for a duplicate;
/// - the index snapshots (`identity_snapshots`, `identity_snapshot_persons`) a start-up loads instead of every face.
/// The generation (`identity_generation`), bumped by a bulk change, stays with `IdentityService`.
enum IdentityLog {
    // MARK: Change log

    /// Appends `changes`; call under the cross-instance lock (like embedding ids, sequence numbers must be allocated
    /// in commit order for "greater than the last seen" to be complete). Returns the last sequence number.
    static func append(_ changes: [IdentityService.IndexChange], on tx: any SQLDatabase) async throws -> Int64? {
        var last: Int64?
        let now = nowMs()
        // 200 rows a statement: a sweep of missing photos logs thousands of removals at once.
        for start in stride(from: 0, to: changes.count, by: 200) {
            let rows = changes[start..<min(start + 200, changes.count)].map { change -> SQLQueryString in
                """
                (\(bind: change.embeddingID), \(bind: change.from), \(bind: change.fromLook), \(bind: change.to), \(bind: change.toLook),
                    \(bind: EmbeddingCodec.encode(change.face)), \(bind: now))
                """
            }
            let seqs = try await tx.raw("""
                INSERT INTO identity_changes (embedding_id, from_person, from_look, to_person, to_look, vector, created_at)
                VALUES \(rows.joined(separator: ", ")) RETURNING seq
                """).all().map { try $0.decode(column: "seq", as: Int64.self) }
            last = seqs.max()
        }
        return last
    }

    /// Appends the removal of every face of `photos`, copied from `embeddings` by the database (face order by id).
    /// Call under the cross-instance lock, before the faces are deleted.
    static func appendRemovals(ofFacesOf photos: [Int64], on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            INSERT INTO identity_changes (embedding_id, from_person, from_look, to_person, vector, created_at)
            SELECT id, person_id, look_id, NULL, vector, \(bind: nowMs()) FROM embeddings WHERE photo_id IN (\(binds: photos)) ORDER BY id
            """).run()
    }

    /// The changes after sequence number `seq`, in order.
    static func changes(after seq: Int64, on db: any SQLDatabase) async throws -> [IdentityService.IndexChange] {
        try await db.raw("""
            SELECT seq, embedding_id, from_person, from_look, to_person, to_look, vector FROM identity_changes WHERE seq > \(bind: seq) ORDER BY seq
            """).all().map { row in
            IdentityService.IndexChange(
                seq: try row.decode(column: "seq", as: Int64.self), embeddingID: try row.decode(column: "embedding_id", as: Int64.self),
                from: try row.decode(column: "from_person", as: Int64?.self), fromLook: try row.decode(column: "from_look", as: Int64?.self),
                to: try row.decode(column: "to_person", as: Int64?.self), toLook: try row.decode(column: "to_look", as: Int64?.self),
                face: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)))
        }
    }

    /// The last sequence number written (0 before the first).
    static func lastChangeSeq(on db: any SQLDatabase) async throws -> Int64 {
        try await db.raw("SELECT COALESCE(MAX(seq), 0) AS seq FROM identity_changes").first()!.decode(column: "seq", as: Int64.self)
    }

    // MARK: Callback log

    /// Records the answer to callback `key` so a duplicate gets it again and writes nothing.
    static func remember(_ response: CallbackResponse, key: String, photoID: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            INSERT INTO processed_callbacks (callback_key, photo_id, response, created_at)
            VALUES (\(bind: key), \(bind: photoID), \(bind: String(decoding: try JSONEncoder().encode(response), as: UTF8.self)), \(bind: nowMs()))
            """).run()
    }

    /// The stored answer for callback `key`, if it was seen.
    static func rememberedResponse(for key: String, on tx: any SQLDatabase) async throws -> CallbackResponse? {
        guard let stored = try await tx.raw("SELECT response FROM processed_callbacks WHERE callback_key = \(bind: key)").first() else { return nil }
        return try JSONDecoder().decode(CallbackResponse.self, from: Data(try stored.decode(column: "response", as: String.self).utf8))
    }

    // MARK: Snapshots

    /// Where a snapshot's catch-up starts.
    struct SnapshotMarks: Sendable, Equatable {
        let id: Int64
        let lastEmbeddingID: Int64
        let lastChangeSeq: Int64
    }

    /// The latest complete snapshot of `generation`, if any.
    static func latestSnapshot(of generation: Int64, on db: any SQLDatabase) async throws -> SnapshotMarks? {
        try await db.raw("""
            SELECT id, last_embedding_id, last_change_seq FROM identity_snapshots
            WHERE complete = \(bind: true) AND generation = \(bind: generation) ORDER BY id DESC LIMIT 1
            """).first().map {
            SnapshotMarks(id: try $0.decode(column: "id", as: Int64.self), lastEmbeddingID: try $0.decode(column: "last_embedding_id", as: Int64.self),
                          lastChangeSeq: try $0.decode(column: "last_change_seq", as: Int64.self))
        }
    }

    /// One look of a snapshot: its id, owner, face count and sum of face vectors.
    struct SnapshotLook: Sendable {
        let look: Int64
        let person: Int64
        let faceCount: Int
        let sum: [Float]
    }

    /// Up to `limit` looks of `snapshot` after `look`, by look id.
    static func snapshotLooks(_ snapshot: SnapshotMarks, after look: Int64, limit: Int, on db: any SQLDatabase) async throws -> [SnapshotLook] {
        try await db.raw("""
            SELECT person_id, owner_id, face_count, vector_sum FROM identity_snapshot_persons
            WHERE snapshot_id = \(bind: snapshot.id) AND person_id > \(bind: look) ORDER BY person_id LIMIT \(bind: limit)
            """).all().map {
            let look = try $0.decode(column: "person_id", as: Int64.self)
            return SnapshotLook(look: look, person: try $0.decode(column: "owner_id", as: Int64?.self) ?? look,
                                faceCount: try $0.decode(column: "face_count", as: Int.self),
                                sum: EmbeddingCodec.floats(from: try $0.decode(column: "vector_sum", as: Data.self)))
        }
    }

    /// Starts an incomplete snapshot with its marks; returns its id.
    static func beginSnapshot(generation: Int64, lastEmbeddingID: Int64, lastChangeSeq: Int64, personCount: Int,
                              on db: any SQLDatabase) async throws -> Int64 {
        try await db.raw("""
            INSERT INTO identity_snapshots (generation, last_embedding_id, last_change_seq, person_count, face_count, complete, created_at)
            VALUES (\(bind: generation), \(bind: lastEmbeddingID), \(bind: lastChangeSeq), \(bind: personCount), 0, \(bind: false), \(bind: nowMs()))
            RETURNING id
            """).first()!.decode(column: "id", as: Int64.self)
    }

    /// Adds looks to snapshot `id`.
    static func addSnapshotLooks(_ looks: [SnapshotLook], to id: Int64, on db: any SQLDatabase) async throws {
        var insert = db.insert(into: "identity_snapshot_persons").columns("snapshot_id", "person_id", "owner_id", "face_count", "vector_sum")
        for look in looks {
            insert = insert.values(SQLBind(id), SQLBind(look.look), SQLBind(look.person == look.look ? nil : look.person),
                                   SQLBind(look.faceCount), SQLBind(EmbeddingCodec.bytes(of: look.sum)))
        }
        try await insert.run()
    }

    /// Snapshot `id` holds every person: from now on it may be read.
    static func completeSnapshot(_ id: Int64, faceCount: Int64, on db: any SQLDatabase) async throws {
        try await db.raw("UPDATE identity_snapshots SET complete = \(bind: true), face_count = \(bind: faceCount) WHERE id = \(bind: id)").run()
    }

    /// Deletes snapshots older than `id`, complete or not (and rows of writers that were cut off), `chunk` rows a
    /// statement so no transaction grows long.
    static func deleteSnapshots(before id: Int64, chunk: Int, on db: any SQLDatabase) async throws {
        for row in try await db.raw("SELECT DISTINCT snapshot_id FROM identity_snapshot_persons WHERE snapshot_id < \(bind: id)").all() {
            let old = try row.decode(column: "snapshot_id", as: Int64.self)
            while true {
                let persons = try await db.raw("""
                    SELECT person_id FROM identity_snapshot_persons WHERE snapshot_id = \(bind: old) ORDER BY person_id LIMIT \(bind: chunk)
                    """).all().map { try $0.decode(column: "person_id", as: Int64.self) }
                if persons.isEmpty { break }
                try await db.raw("DELETE FROM identity_snapshot_persons WHERE snapshot_id = \(bind: old) AND person_id IN (\(binds: persons))").run()
            }
        }
        try await db.raw("DELETE FROM identity_snapshots WHERE id < \(bind: id)").run()
    }
}
