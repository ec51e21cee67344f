import Fluent
import SQLKit

/// Indexes for the paged and per-person reads of a large library (README "Large libraries"), each measured at a
/// million faces:
/// - a person's cover face (`MediaStore.coverFaceSubquery`, once per row of the people list) is the first entry of
///   `embeddings_person_cover` instead of a sort of all the person's faces (2–4 s for the people list's first page);
/// - a person's faces by id and photos by id (`person_id` then the id: PostgreSQL's plain `person_id` index
///   does not keep that order, and SQLite's kept the photo's rowid, not `photo_id`);
/// - the people list by photo count;
/// - `GET /photos?status=` by id within a status.
struct AddScaleIndexes: AsyncMigration {
    private static let statements: [(create: String, drop: String)] = [
        ("CREATE INDEX embeddings_person_cover ON embeddings (person_id, confirmed DESC, confidence DESC, id)", "DROP INDEX embeddings_person_cover"),
        ("CREATE INDEX embeddings_person_id ON embeddings (person_id, id)", "DROP INDEX embeddings_person_id"),
        ("CREATE INDEX photo_persons_person_photo ON photo_persons (person_id, photo_id)", "DROP INDEX photo_persons_person_photo"),
        ("CREATE INDEX persons_by_photo_count ON persons (photo_count DESC, id)", "DROP INDEX persons_by_photo_count"),
        ("CREATE INDEX photos_status_id ON photos (status, id)", "DROP INDEX photos_status_id"),
    ]

    func prepare(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        for statement in Self.statements { try await sql.raw("\(unsafeRaw: statement.create)").run() }
        // Superseded: the new indexes start with the same column.
        try await sql.raw("DROP INDEX embeddings_person").run()
        try await sql.raw("DROP INDEX photo_persons_person").run()
    }

    func revert(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        try await sql.create(index: "embeddings_person").on("embeddings").column("person_id").run()
        try await sql.create(index: "photo_persons_person").on("photo_persons").column("person_id").run()
        for statement in Self.statements { try await sql.raw("\(unsafeRaw: statement.drop)").run() }
    }
}

/// `recluster_jobs.library_marks`: what the library looked like when a re-cluster completed
/// (`ReclusterService.isCurrent`), so `sort` can skip a closing re-cluster that would change nothing.
struct AddReclusterMarks: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("recluster_jobs").field("library_marks", .string).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("recluster_jobs").deleteField("library_marks").update()
    }
}

/// `quarter_turns` of a photo (and of a reprocess's staged photo): counter-clockwise quarter turns its analysis
/// gave it (a print scanned sideways, found upright by the ML service). Its width, height and face boxes are of
/// the turned photo, so a later `/render` of its images turns it the same way. NULL for photos from before.
struct AddPhotoQuarterTurns: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("photos").field("quarter_turns", .int).update()
        try await database.schema("reprocess_photos").field("quarter_turns", .int).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("reprocess_photos").deleteField("quarter_turns").update()
        try await database.schema("photos").deleteField("quarter_turns").update()
    }
}
