import PhotoSorterCore
import SQLKit

/// The one writer of `persons`: ids (never deleted, never reused), names, visibility, redirects of merged ids,
/// and the counts (`face_count`, `photo_count`) and representative photo derived from the faces.
enum PersonsTable {
    /// A person without faces yet (its counts come with its first photo, or from `recount`).
    static func insert(representativePhoto: Int64?, now: Int64 = nowMs(), on tx: any SQLDatabase) async throws -> Int64 {
        try await tx.raw("""
            INSERT INTO persons (display_name, face_count, photo_count, representative_photo_id, created_at, updated_at)
            VALUES (NULL, 0, 0, \(bind: representativePhoto), \(bind: now), \(bind: now)) RETURNING id
            """).first()!.decode(column: "id", as: Int64.self)
    }

    /// `person` appears in one more photo, with `faces` faces there.
    static func addPhoto(of person: Int64, faces: Int, now: Int64, on tx: any SQLDatabase) async throws {
        try await countPhoto(of: person, faces: faces, photos: 1, now: now, on: tx)
    }

    /// `person` no longer appears in a photo where it had `faces` faces.
    static func removePhoto(of person: Int64, faces: Int, now: Int64, on tx: any SQLDatabase) async throws {
        try await countPhoto(of: person, faces: -faces, photos: -1, now: now, on: tx)
    }

    /// Persons no longer appear in photos that vanished: per person, how many photos and faces it lost. One
    /// statement per 500 persons (a sweep of 10,000 photos touches thousands).
    static func removePhotos(_ lost: [(person: Int64, photos: Int, faces: Int)], now: Int64, on tx: any SQLDatabase) async throws {
        for start in stride(from: 0, to: lost.count, by: 500) {
            let rows = lost[start..<min(start + 500, lost.count)].map { entry -> SQLQueryString in
                "(CAST(\(bind: entry.person) AS BIGINT), CAST(\(bind: entry.photos) AS BIGINT), CAST(\(bind: entry.faces) AS BIGINT))"
            }
            // VALUES names its columns column1, column2… on both databases.
            try await tx.raw("""
                UPDATE persons SET photo_count = photo_count - v.photos, face_count = face_count - v.faces, updated_at = \(bind: now)
                FROM (SELECT column1 AS id, column2 AS photos, column3 AS faces FROM (VALUES \(rows.joined(separator: ", "))) AS lost_rows) AS v
                WHERE persons.id = v.id
                """).run()
        }
    }

    /// The current id of each of `ids`: itself, or the person it was merged into (redirects are kept one hop
    /// deep by `redirect`; a chain is followed anyway).
    static func current(_ ids: Set<Int64>, on db: any SQLDatabase) async throws -> [Int64: Int64] {
        var result: [Int64: Int64] = [:]
        for id in ids {
            var person = id
            for _ in 0..<64 {
                guard let next = try await db.raw("SELECT merged_into FROM persons WHERE id = \(bind: person)").first()?
                    .decode(column: "merged_into", as: Int64?.self) else { break }
                person = next
            }
            result[id] = person
        }
        return result
    }

    private static func countPhoto(of person: Int64, faces: Int, photos: Int, now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE persons SET face_count = face_count + \(bind: faces), photo_count = photo_count + \(bind: photos),
                updated_at = \(bind: now) WHERE id = \(bind: person)
            """).run()
    }

    /// Counts and representative photo recomputed from `embeddings` and `photo_persons`; the representative photo
    /// stays while it still shows the person.
    static func recount(_ person: Int64, now: Int64, on tx: any SQLDatabase) async throws {
        let counts = try await tx.raw("""
            SELECT COUNT(*) AS faces, COUNT(DISTINCT photo_id) AS photos, MIN(photo_id) AS first_photo
            FROM embeddings WHERE person_id = \(bind: person)
            """).first()!
        try await tx.raw("""
            UPDATE persons SET face_count = \(bind: try counts.decode(column: "faces", as: Int.self)),
                photo_count = \(bind: try counts.decode(column: "photos", as: Int.self)),
                representative_photo_id = CASE WHEN representative_photo_id IN
                    (SELECT photo_id FROM photo_persons WHERE person_id = \(bind: person))
                    THEN representative_photo_id ELSE \(bind: try counts.decode(column: "first_photo", as: Int64?.self)) END,
                updated_at = \(bind: now)
            WHERE id = \(bind: person)
            """).run()
    }

    /// A user's name for `person` (nil clears it); `fromXMP`: an XMP face region's name (`XMPNameImport`).
    static func rename(_ person: Int64, to name: String?, fromXMP: Bool = false, now: Int64 = nowMs(), on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE persons SET display_name = \(bind: name), name_from_xmp = \(fromXMP), updated_at = \(bind: now) WHERE id = \(bind: person)
            """).run()
    }

    static func setHidden(_ person: Int64, _ hidden: Bool, now: Int64 = nowMs(), on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE persons SET hidden = \(hidden), updated_at = \(bind: now) WHERE id = \(bind: person)").run()
    }

    /// `absorbed` (and every older redirect to them) become redirects to `survivor`, without faces.
    static func redirect(_ absorbed: [Int64], to survivor: Int64, now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE persons SET merged_into = \(bind: survivor), face_count = 0, photo_count = 0, updated_at = \(bind: now)
            WHERE id IN (\(binds: absorbed)) OR merged_into IN (\(binds: absorbed))
            """).run()
    }
}
