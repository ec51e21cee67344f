import PhotoSorterCore
import SQLKit

/// The one writer of `photo_persons` (which persons appear in which photo, with the photo's `taken_at` repeated
/// for the per-person date index, see `AddTakenDates`). Every row takes its date from `photos` in the same
/// statement, so the copy cannot drift from the photo.
enum PhotoPersonsTable {
    /// Adds `persons` to `photo` (a photo just analysed: it has none yet).
    static func add(photo: Int64, persons: [Int64], on tx: any SQLDatabase) async throws {
        for person in persons {
            try await tx.raw("""
                INSERT INTO photo_persons (photo_id, person_id, taken_at)
                SELECT id, \(bind: person), COALESCE(taken_at, '') FROM photos WHERE id = \(bind: photo)
                """).run()
        }
    }

    /// `photo` shows exactly `persons` from now on.
    static func replace(photo: Int64, persons: [Int64], on tx: any SQLDatabase) async throws {
        try await remove(photo: photo, on: tx)
        try await add(photo: photo, persons: persons, on: tx)
    }

    /// `photo` shows nobody (its file changed; its faces are gone).
    static func remove(photo: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM photo_persons WHERE photo_id = \(bind: photo)").run()
    }

    /// `photos` show nobody (their files vanished).
    static func remove(photos: [Int64], on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM photo_persons WHERE photo_id IN (\(binds: photos))").run()
    }

    /// Every row (a reprocess rebuilds them all).
    static func removeAll(on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM photo_persons").run()
    }

    /// Keeps the rows of `photo` in step with its new `taken_at`.
    static func retake(photo: Int64, takenAt: String, on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE photo_persons SET taken_at = \(bind: takenAt) WHERE photo_id = \(bind: photo)").run()
    }
}
