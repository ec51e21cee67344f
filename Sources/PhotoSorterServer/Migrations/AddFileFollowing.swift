import Fluent
import SQLKit

/// What following the files needs (README "The library follows the files"):
/// - `photos.full_hash` (SHA-256 of the whole file, written when a path first appears; NULL for photos stored
///   before) and an index on `sample_hash`, through which a new path finds the stored photo with its content;
/// - `photos.missing_since`, set while a photo is `MISSING` (its file vanished from a scanned root);
/// - `ingest_jobs.root` (the watch root a watcher's scan judges availability on) and the jobs' `moved`,
///   `missing`, `restored` and `copies` counts;
/// - `processed_callbacks (created_at, photo_id)`: which photos a run analysed (`sort`'s ML time); `photo_id`
///   indexes on the tables that reference a photo but were keyed by job (deleting photos probes them);
/// - `parked_faces` and `parked_face_rejections`: the faces (with their corrections) of a photo that went missing
///   (`reason` "missing", put back when it returns) or whose content changed (`reason` "changed", carried over to
///   the new analysis's faces by overlap). Parked faces are out of `embeddings`, so no person, index, review or
///   re-cluster sees them.
struct AddFileFollowing: AsyncMigration {
    func prepare(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        // One column per statement: SQLite adds one at a time.
        try await database.schema("photos").field("full_hash", .string).update()
        try await database.schema("photos").field("missing_since", .int64).update()
        try await sql.raw("CREATE INDEX photos_sample_hash ON photos (sample_hash)").run()
        try await database.schema("ingest_jobs").field("root", .string).update()
        for column in ["moved_count", "missing_count", "restored_count", "copies_count"] {
            try await database.schema("ingest_jobs").field(.definition(name: .key(.string(column)), dataType: .int,
                                                                         constraints: [.required, .sql(.default(0))])).update()
        }
        try await database.schema("parked_faces")
            .field("id", .int64, .identifier(auto: true))
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("reason", .string, .required)
            .field("face_index", .int, .required)
            .field("person_id", .int64, .required)
            .field("vector", .data, .required)
            .field("bbox_x1", .int, .required)
            .field("bbox_y1", .int, .required)
            .field("bbox_x2", .int, .required)
            .field("bbox_y2", .int, .required)
            .field("confidence", .double, .required)
            .field("similarity", .double)
            .field("created_person", .bool, .required)
            .field("suggested_person_id", .int64)
            .field("model_version", .string, .required)
            .field("confirmed", .bool, .required)
            .field("runner_up_person_id", .int64)
            .field("runner_up_similarity", .double)
            .field("created_at", .int64, .required)
            .create()
        try await sql.raw("CREATE INDEX parked_faces_photo ON parked_faces (photo_id, face_index)").run()
        try await database.schema("parked_face_rejections")
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("face_index", .int, .required)
            .field("person_id", .int64, .required)
            .field("created_at", .int64, .required)
            .create()
        try await sql.raw("CREATE INDEX parked_face_rejections_photo ON parked_face_rejections (photo_id)").run()
        // Deleting a photo (prune) looks up every table that references it by `photo_id`: these began with `job_id`,
        // so each deleted photo scanned them whole (10,000 pruned photos took minutes).
        for table in ["photo_ingest_map", "reprocess_photos", "reprocess_faces"] {
            try await sql.raw("CREATE INDEX \(ident: table + "_photo") ON \(ident: table) (photo_id)").run()
        }
        // The photos analysed during a run (`sort`'s ML time): a moved or restored photo changes its row, not its analysis.
        try await sql.raw("CREATE INDEX processed_callbacks_created ON processed_callbacks (created_at, photo_id)").run()
    }

    func revert(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        try await sql.raw("DROP INDEX processed_callbacks_created").run()
        for table in ["photo_ingest_map", "reprocess_photos", "reprocess_faces"] { try await sql.raw("DROP INDEX \(ident: table + "_photo")").run() }
        try await database.schema("parked_face_rejections").delete()
        try await database.schema("parked_faces").delete()
        for column in ["copies_count", "restored_count", "missing_count", "moved_count", "root"] {
            try await database.schema("ingest_jobs").deleteField(.string(column)).update()
        }
        try await sql.raw("DROP INDEX photos_sample_hash").run()
        try await database.schema("photos").deleteField("missing_since").update()
        try await database.schema("photos").deleteField("full_hash").update()
    }
}
