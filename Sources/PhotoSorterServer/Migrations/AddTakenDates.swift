import Fluent
import SQLKit

/// When each photo was taken (`PhotoSorterCore.TakenDate`): `photos.taken_at` (wall-clock text
/// `YYYY-MM-DDTHH:MM:SS`), `taken_offset` (`+HH:MM` when the photo records it) and `taken_at_source` (`exif`, `xmp`,
/// `mtime`; NULL while the date is the file's time and the photo's header was not read yet). `photo_persons`
/// repeats `taken_at` so one person's photos in a date range, or in taken order, are one index range
/// (`photo_persons_person_taken`) instead of a lookup of every photo of the person (74k at a million photos).
///
/// Photos from before start with their file's time, NULL source: the next scan reads their headers
/// (`TakenDateBackfill`) without analysing them again.
struct AddTakenDates: AsyncMigration {
    func prepare(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        // One column per statement: SQLite adds one at a time.
        for column in ["taken_at", "taken_offset", "taken_at_source"] {
            try await database.schema("photos").field(.definition(name: .key(.string(column)), dataType: .string, constraints: [])).update()
        }
        let fileTime = sql.dialect.name == "sqlite"
            ? "strftime('%Y-%m-%dT%H:%M:%S', modified_at / 1000, 'unixepoch', 'localtime')"
            : "to_char(to_timestamp(modified_at / 1000.0), 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        try await sql.raw("UPDATE photos SET taken_at = \(unsafeRaw: fileTime)").run()
        try await sql.raw("ALTER TABLE photo_persons ADD COLUMN taken_at TEXT NOT NULL DEFAULT ''").run()
        try await sql.raw("UPDATE photo_persons SET taken_at = p.taken_at FROM photos p WHERE p.id = photo_persons.photo_id").run()
        try await sql.raw("CREATE INDEX photos_taken ON photos (taken_at, id)").run()
        try await sql.raw("CREATE INDEX photo_persons_person_taken ON photo_persons (person_id, taken_at, photo_id)").run()
    }

    func revert(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        try await sql.raw("DROP INDEX photo_persons_person_taken").run()
        try await sql.raw("DROP INDEX photos_taken").run()
        try await database.schema("photo_persons").deleteField("taken_at").update()
        for column in ["taken_at_source", "taken_offset", "taken_at"] { try await database.schema("photos").deleteField(.string(column)).update() }
    }
}
