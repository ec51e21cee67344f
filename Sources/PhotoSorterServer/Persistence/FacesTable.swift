import PhotoSorterCore
import SQLKit

/// The one writer of `embeddings`: every face with its vector, box, person (NULL for an unsorted face, see
/// `FaceModel.unsureBelowNorm`) and look (`look_id`, NULL for the person's own; see `IdentityIndex`), the similarity that placed it there, whether a user confirmed it, and its
/// runner-up (the nearest person it did not join). Callers decide; these are the statements.
enum FacesTable {
    /// A face as it is first stored (by an analysis, or by a reprocess's rebuild).
    struct NewFace {
        var photoID: Int64
        /// Nil: an unsure face that matched no person (unsorted).
        var personID: Int64?
        /// Nil: the person's own look.
        var lookID: Int64? = nil
        var faceIndex: Int
        var embedding: Embedding
        var bbox: BoundingBox
        var confidence: Double
        var similarity: Double?
        var createdPerson: Bool
        var suggestedPersonID: Int64?
        var modelVersion: String
        var confirmed = false
        /// The confirmation came from an XMP name, not from a user.
        var namedFromXMP = false
        var runnerUpPersonID: Int64?
        var runnerUpSimilarity: Double?
        /// The embedding's length before L2 normalisation, as the ML service measured it.
        var embeddingNorm: Double?
    }

    /// Stores `face`; returns its id.
    static func insert(_ face: NewFace, now: Int64, on tx: any SQLDatabase) async throws -> Int64 {
        try await tx.raw("""
            INSERT INTO embeddings (photo_id, person_id, look_id, face_index, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2,
                confidence, similarity, created_person, suggested_person_id, model_version, created_at,
                confirmed, named_from_xmp, runner_up_person_id, runner_up_similarity, embedding_norm)
            VALUES (\(bind: face.photoID), \(bind: face.personID), \(bind: face.lookID), \(bind: face.faceIndex), \(bind: EmbeddingCodec.encode(face.embedding)),
                \(bind: face.bbox.x1), \(bind: face.bbox.y1), \(bind: face.bbox.x2), \(bind: face.bbox.y2),
                \(bind: face.confidence), \(bind: face.similarity), \(bind: face.createdPerson), \(bind: face.suggestedPersonID),
                \(bind: face.modelVersion), \(bind: now), \(bind: face.confirmed), \(bind: face.namedFromXMP), \(bind: face.runnerUpPersonID),
                \(bind: face.runnerUpSimilarity), \(bind: face.embeddingNorm)) RETURNING id
            """).first()!.decode(column: "id", as: Int64.self)
    }

    /// The faces of `photo` are gone (its file changed).
    static func remove(photo: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM embeddings WHERE photo_id = \(bind: photo)").run()
    }

    /// A copy of the faces of `source` on `target` (the same content at a second path): same persons, boxes,
    /// confirmations and "not this person" marks, new ids. Call under the identity lock (the index takes them as
    /// new faces at its next catch-up).
    static func copy(photo source: Int64, to target: Int64, now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            INSERT INTO embeddings (photo_id, person_id, look_id, face_index, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence,
                similarity, created_person, suggested_person_id, model_version, created_at, confirmed, named_from_xmp, runner_up_person_id,
                runner_up_similarity, embedding_norm)
            SELECT \(bind: target), person_id, look_id, face_index, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence,
                similarity, \(bind: false), suggested_person_id, model_version, \(bind: now), confirmed, named_from_xmp, runner_up_person_id,
                runner_up_similarity, embedding_norm
            FROM embeddings WHERE photo_id = \(bind: source) ORDER BY face_index
            """).run()
        try await tx.raw("""
            INSERT INTO face_rejections (embedding_id, person_id, created_at)
            SELECT n.id, r.person_id, r.created_at FROM face_rejections r JOIN embeddings o ON o.id = r.embedding_id
            JOIN embeddings n ON n.photo_id = \(bind: target) AND n.face_index = o.face_index WHERE o.photo_id = \(bind: source)
            """).run()
    }

    /// The persons of `photo`'s faces, in face order, each once (unsorted faces have none).
    static func persons(ofPhoto photo: Int64, on db: any SQLDatabase) async throws -> [Int64] {
        var persons: [Int64] = []
        for row in try await db.raw("""
            SELECT person_id FROM embeddings WHERE photo_id = \(bind: photo) AND person_id IS NOT NULL ORDER BY face_index
            """).all() {
            let person = try row.decode(column: "person_id", as: Int64.self)
            if !persons.contains(person) { persons.append(person) }
        }
        return persons
    }

    /// Every face (a reprocess stores them all again).
    static func removeAll(on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM embeddings").run()
    }

    /// A re-cluster's decision for one face (no person: an unsure face left unsorted); a confirmed face keeps its
    /// similarity (the caller passes it).
    struct Reassignment: Sendable {
        let face: Int64
        let person: Int64?
        let look: Int64?
        let similarity: Double?
        let runnerUp: Int64?
        let runnerUpSimilarity: Double?
    }

    /// Faces one `reassign` statement updates: a re-cluster may rewrite every face, and one statement per face cost
    /// a round trip (PostgreSQL) and a statement each (bench/RESULTS.md, "Re-cluster at a million faces"). Six
    /// parameters a face, far below either database's limit on parameters.
    static let reassignmentsPerStatement = 500

    /// Writes re-cluster decisions, `reassignmentsPerStatement` faces per `UPDATE … FROM` a list of values. Each
    /// value is cast to its column's type: PostgreSQL cannot infer the type of a NULL parameter in a VALUES list.
    static func reassign(_ reassignments: [Reassignment], on tx: any SQLDatabase) async throws {
        for start in stride(from: 0, to: reassignments.count, by: reassignmentsPerStatement) {
            let rows: [SQLQueryString] = reassignments[start..<min(start + reassignmentsPerStatement, reassignments.count)].map { row in
                """
                (CAST(\(bind: row.face) AS BIGINT), CAST(\(bind: row.person) AS BIGINT), CAST(\(bind: row.look) AS BIGINT),
                CAST(\(bind: row.similarity) AS DOUBLE PRECISION), CAST(\(bind: row.runnerUp) AS BIGINT),
                CAST(\(bind: row.runnerUpSimilarity) AS DOUBLE PRECISION))
                """
            }
            try await tx.raw("""
                WITH decided (id, person_id, look_id, similarity, runner_up_person_id, runner_up_similarity) AS (VALUES \(rows.joined(separator: ", ")))
                UPDATE embeddings SET person_id = decided.person_id, look_id = decided.look_id, similarity = decided.similarity,
                    runner_up_person_id = decided.runner_up_person_id, runner_up_similarity = decided.runner_up_similarity
                FROM decided WHERE embeddings.id = decided.id
                """).run()
        }
    }

    /// The rule's new place for a face a user took out of its person: unconfirmed, in the look it matched, with its
    /// new runner-up; no person (unsorted) for an unsure face that matched no other.
    static func replace(_ face: Int64, to person: Int64?, look: Int64?, similarity: Double?, runnerUp: FaceResolution.Candidate?,
                        on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE embeddings SET person_id = \(bind: person), look_id = \(bind: look), confirmed = \(false), named_from_xmp = \(false), similarity = \(bind: similarity),
                runner_up_person_id = \(bind: runnerUp?.person), runner_up_similarity = \(bind: runnerUp.map { Double($0.similarity) })
            WHERE id = \(bind: face)
            """).run()
    }

    /// Every face of `persons` goes to `survivor`, confirmed (a merge is a must-link) by the user, keeping its look:
    /// an absorbed person's own look becomes a look of the survivor (`IdentityIndex`). The user's corrections here
    /// and in `move` and `confirm` clear `named_from_xmp` (`XMPNameImport` sets it again after the corrections it
    /// makes itself).
    static func merge(persons: [Int64], into survivor: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE embeddings SET look_id = CASE WHEN COALESCE(look_id, person_id) = \(bind: survivor) THEN NULL ELSE COALESCE(look_id, person_id) END,
                person_id = \(bind: survivor), confirmed = \(true), named_from_xmp = \(false) WHERE person_id IN (\(binds: persons))
            """).run()
    }

    /// `faces` go to `person`'s own look where a user put them: confirmed, with no similarity of the rule's.
    static func move(_ faces: [Int64], to person: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE embeddings SET person_id = \(bind: person), look_id = NULL, confirmed = \(true), named_from_xmp = \(false), similarity = NULL
            WHERE id IN (\(binds: faces))
            """).run()
    }

    static func confirm(_ face: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE embeddings SET confirmed = \(true), named_from_xmp = \(false) WHERE id = \(bind: face)").run()
    }

    /// `face`, confirmed where it is, was placed there by a name from XMP.
    static func markNamedFromXMP(_ face: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE embeddings SET confirmed = \(true), named_from_xmp = \(true) WHERE id = \(bind: face)").run()
    }

    /// `face` no longer offers `person` as its runner-up (a user said it is not them).
    static func dropRunnerUp(_ person: Int64, of face: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE embeddings SET runner_up_person_id = NULL, runner_up_similarity = NULL
            WHERE id = \(bind: face) AND runner_up_person_id = \(bind: person)
            """).run()
    }

    /// No face offers `person` as its runner-up any more (it has no faces left).
    static func dropRunnerUps(to person: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE embeddings SET runner_up_person_id = NULL, runner_up_similarity = NULL WHERE runner_up_person_id = \(bind: person)").run()
    }

    /// Runner-ups pointing at `absorbed` point at `survivor`, except on the survivor's own faces, which lose theirs.
    static func redirectRunnerUps(from absorbed: [Int64], to survivor: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE embeddings SET runner_up_person_id = CASE WHEN person_id = \(bind: survivor) THEN NULL ELSE \(bind: survivor) END,
                runner_up_similarity = CASE WHEN person_id = \(bind: survivor) THEN NULL ELSE runner_up_similarity END
            WHERE runner_up_person_id IN (\(binds: absorbed))
            """).run()
    }
}
