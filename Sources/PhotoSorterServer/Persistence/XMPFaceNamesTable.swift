import Foundation
import SQLKit

/// The one writer of `xmp_face_names`: the names XMP face regions gave stored faces, and what became of each
/// (`XMPNameImport`): pending (NULL), `applied`, or `conflict` with the reason.
enum XMPFaceNamesTable {
    enum Outcome: String, Codable, Sendable {
        case applied, conflict
    }

    /// A name still to be turned into identity.
    struct Pending: Sendable {
        let id: Int64
        let face: Int64
        let name: String
    }

    /// Longest name taken from a region (the people page's own limit for a name).
    static let maxNameLength = 200

    /// Records the name an analysis read for `face` (blank names are no names; a name too long is a conflict).
    static func record(_ name: String, face: Int64, photo: Int64, now: Int64, on tx: any SQLDatabase) async throws {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return }
        let tooLong = trimmed.count > maxNameLength
        try await tx.raw("""
            INSERT INTO xmp_face_names (embedding_id, photo_id, name, outcome, detail, created_at)
            VALUES (\(bind: face), \(bind: photo), \(bind: trimmed), \(bind: tooLong ? Outcome.conflict.rawValue : nil),
                \(bind: tooLong ? "the name is longer than \(maxNameLength) characters" : nil), \(bind: now))
            """).run()
    }

    /// The oldest pending names (at most `limit`).
    static func pending(limit: Int, on db: any SQLDatabase) async throws -> [Pending] {
        try await db.raw("""
            SELECT id, embedding_id, name FROM xmp_face_names WHERE outcome IS NULL ORDER BY id LIMIT \(bind: limit)
            """).all().map {
            Pending(id: try $0.decode(column: "id", as: Int64.self), face: try $0.decode(column: "embedding_id", as: Int64.self),
                    name: try $0.decode(column: "name", as: String.self))
        }
    }

    static func settle(_ id: Int64, _ outcome: Outcome, detail: String? = nil, on db: any SQLDatabase) async throws {
        try await db.raw("UPDATE xmp_face_names SET outcome = \(bind: outcome.rawValue), detail = \(bind: detail) WHERE id = \(bind: id)").run()
    }

    /// The names in conflict, oldest first (at most `limit`), with their photos' paths.
    static func conflicts(limit: Int, on db: any SQLDatabase) async throws -> [XMPNamesSummary.Conflict] {
        try await db.raw("""
            SELECT x.embedding_id, x.photo_id, ph.path, x.name, x.detail FROM xmp_face_names x JOIN photos ph ON ph.id = x.photo_id
            WHERE x.outcome = \(bind: Outcome.conflict.rawValue) ORDER BY x.id LIMIT \(bind: limit)
            """).all().map {
            XMPNamesSummary.Conflict(faceID: try $0.decode(column: "embedding_id", as: Int64.self),
                                     photoID: try $0.decode(column: "photo_id", as: Int64.self), path: try $0.decode(column: "path", as: String.self),
                                     name: try $0.decode(column: "name", as: String.self), reason: try $0.decode(column: "detail", as: String?.self) ?? "")
        }
    }

    /// How many names are pending, applied, and in conflict.
    static func counts(on db: any SQLDatabase) async throws -> (pending: Int, applied: Int, conflicts: Int) {
        var counts = (pending: 0, applied: 0, conflicts: 0)
        for row in try await db.raw("SELECT outcome, COUNT(*) AS n FROM xmp_face_names GROUP BY outcome").all() {
            let n = try row.decode(column: "n", as: Int.self)
            switch try row.decode(column: "outcome", as: String?.self).flatMap(Outcome.init(rawValue:)) {
            case nil: counts.pending += n
            case .applied: counts.applied += n
            case .conflict: counts.conflicts += n
            }
        }
        return counts
    }
}
