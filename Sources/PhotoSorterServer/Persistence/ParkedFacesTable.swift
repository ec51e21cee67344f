import Foundation
import PhotoSorterCore
import SQLKit

/// The one writer of `parked_faces` and `parked_face_rejections`: the faces of a photo set aside, with their
/// persons and corrections, while no person may count them. A photo's parked faces are of one kind:
/// - `missing`: its file vanished; they return to `embeddings` (new ids) when the content comes back;
/// - `changed`: its file got new content; the new analysis's faces take their corrections by overlap.
enum ParkedFacesTable {
    enum Reason: String {
        case missing, changed
    }

    /// The columns `embeddings` and `parked_faces` share, in one order for `INSERT … SELECT` both ways.
    private static let faceColumns = """
        face_index, person_id, look_id, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence, similarity, created_person, \
        suggested_person_id, model_version, confirmed, named_from_xmp, runner_up_person_id, runner_up_similarity, created_at, embedding_norm
        """

    /// What parking took away: per person, the photos and faces it lost.
    struct Parked {
        var lost: [(person: Int64, photos: Int, faces: Int)] = []
    }

    /// Moves the faces of `photos` out of `embeddings` into the parked tables, their "not this person" marks with
    /// them, and logs each face's removal in the identity change log (copied by the database: the vectors never
    /// travel; every instance's index, this one's too, takes the removals at its next catch-up). Call under the
    /// identity lock (change sequence numbers are allocated under it).
    static func park(photos: [Int64], reason: Reason, on tx: any SQLDatabase) async throws -> Parked {
        guard !photos.isEmpty else { return Parked() }
        let lost = try await tx.raw("""
            SELECT person_id, COUNT(DISTINCT photo_id) AS photos, COUNT(*) AS faces FROM embeddings
            WHERE photo_id IN (\(binds: photos)) AND person_id IS NOT NULL GROUP BY person_id
            """).all().map {
            (person: try $0.decode(column: "person_id", as: Int64.self), photos: try $0.decode(column: "photos", as: Int.self),
             faces: try $0.decode(column: "faces", as: Int.self))
        }
        try await IdentityLog.appendRemovals(ofFacesOf: photos, on: tx)
        try await tx.raw("""
            INSERT INTO parked_faces (photo_id, reason, \(unsafeRaw: faceColumns))
            SELECT photo_id, \(bind: reason.rawValue), \(unsafeRaw: faceColumns) FROM embeddings WHERE photo_id IN (\(binds: photos))
            """).run()
        try await tx.raw("""
            INSERT INTO parked_face_rejections (photo_id, face_index, person_id, created_at)
            SELECT e.photo_id, e.face_index, r.person_id, r.created_at FROM face_rejections r JOIN embeddings e ON e.id = r.embedding_id
            WHERE e.photo_id IN (\(binds: photos))
            """).run()
        try await tx.raw("""
            DELETE FROM face_rejections WHERE embedding_id IN (SELECT id FROM embeddings WHERE photo_id IN (\(binds: photos)))
            """).run()
        try await tx.raw("DELETE FROM embeddings WHERE photo_id IN (\(binds: photos))").run()
        return Parked(lost: lost)
    }

    /// The parked faces of `photo` are kept for another reason from now on (a missing photo back with new
    /// content: its old faces' corrections carry over to the new analysis).
    static func repark(photo: Int64, as reason: Reason, on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE parked_faces SET reason = \(bind: reason.rawValue) WHERE photo_id = \(bind: photo)").run()
    }

    /// Puts the parked faces of `photo` back into `embeddings` (new ids: the identity index takes them as new
    /// faces at its next catch-up), on their persons' current ids (`persons`, from `PersonsTable.current`), with
    /// their marks. Returns the persons in face order. Call under the identity lock.
    static func unpark(photo: Int64, persons: [Int64: Int64], on tx: any SQLDatabase) async throws -> [Int64] {
        // A person merged since: its faces come back in its look of the survivor, as a merge leaves them.
        for (old, current) in persons where old != current {
            try await tx.raw("""
                UPDATE parked_faces SET look_id = COALESCE(look_id, person_id), person_id = \(bind: current)
                WHERE photo_id = \(bind: photo) AND person_id = \(bind: old)
                """).run()
        }
        try await tx.raw("""
            INSERT INTO embeddings (photo_id, \(unsafeRaw: faceColumns))
            SELECT photo_id, \(unsafeRaw: faceColumns) FROM parked_faces WHERE photo_id = \(bind: photo) ORDER BY face_index
            """).run()
        try await tx.raw("""
            INSERT INTO face_rejections (embedding_id, person_id, created_at)
            SELECT e.id, r.person_id, r.created_at FROM parked_face_rejections r
            JOIN embeddings e ON e.photo_id = r.photo_id AND e.face_index = r.face_index WHERE r.photo_id = \(bind: photo)
            """).run()
        try await drop(photo: photo, on: tx)
        return try await FacesTable.persons(ofPhoto: photo, on: tx)
    }

    /// The persons the parked faces of `photo` were on (to follow merges before `unpark`).
    static func persons(ofPhoto photo: Int64, on tx: any SQLDatabase) async throws -> Set<Int64> {
        Set(try await tx.raw("SELECT DISTINCT person_id FROM parked_faces WHERE photo_id = \(bind: photo) AND person_id IS NOT NULL").all()
            .map { try $0.decode(column: "person_id", as: Int64.self) })
    }

    /// A parked face as a new analysis of its photo sees it: where it was, whose, whether confirmed, whom not.
    struct Correction {
        let bbox: BoundingBox
        /// Nil: the face was unsorted.
        let person: Int64?
        /// Nil: the person's own look.
        let look: Int64?
        let confirmed: Bool
        let namedFromXMP: Bool
        let rejected: Set<Int64>
    }

    /// The corrections parked when `photo`'s content changed (none when it did not).
    static func corrections(ofChanged photo: Int64, on tx: any SQLDatabase) async throws -> [Correction] {
        var rejected: [Int: Set<Int64>] = [:]
        for row in try await tx.raw("SELECT face_index, person_id FROM parked_face_rejections WHERE photo_id = \(bind: photo)").all() {
            rejected[try row.decode(column: "face_index", as: Int.self), default: []].insert(try row.decode(column: "person_id", as: Int64.self))
        }
        return try await tx.raw("""
            SELECT face_index, person_id, look_id, confirmed, named_from_xmp, bbox_x1, bbox_y1, bbox_x2, bbox_y2 FROM parked_faces
            WHERE photo_id = \(bind: photo) AND reason = \(bind: Reason.changed.rawValue) ORDER BY face_index
            """).all().map { row in
            Correction(bbox: try BoundingBox(row: row), person: try row.decode(column: "person_id", as: Int64?.self),
                       look: try row.decode(column: "look_id", as: Int64?.self), confirmed: try row.decode(column: "confirmed", as: Bool.self),
                       namedFromXMP: try row.decode(column: "named_from_xmp", as: Bool.self),
                       rejected: rejected[try row.decode(column: "face_index", as: Int.self)] ?? [])
        }
    }

    /// Forgets the parked faces of `photo`.
    static func drop(photo: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM parked_face_rejections WHERE photo_id = \(bind: photo)").run()
        try await tx.raw("DELETE FROM parked_faces WHERE photo_id = \(bind: photo)").run()
    }

    /// Forgets every parked face (a reprocess replaced the model: old faces no longer compare).
    static func dropAll(on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM parked_face_rejections").run()
        try await tx.raw("DELETE FROM parked_faces").run()
    }
}
