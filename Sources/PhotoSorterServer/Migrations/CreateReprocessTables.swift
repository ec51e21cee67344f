import Fluent
import SQLKit

/// `reprocess_jobs`: one row per `photo-sorter reprocess` / `POST /reprocess`, at most one RUNNING at a time.
/// `reprocess_photos` and `reprocess_faces` stage the new model's results until every photo is analysed; the
/// job then replaces the library's faces and persons in one transaction (`ReprocessService.finish`).
struct CreateReprocessTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("reprocess_jobs")
            .field("job_id", .string, .identifier(auto: false))
            .field("model", .string, .required)
            .field("status", .string, .required)
            .field("total", .int, .required)
            .field("result", .string)
            .field("created_at", .int64, .required)
            .field("finished_at", .int64)
            .create()
        try await database.schema("reprocess_photos")
            .field("job_id", .string, .required, .references("reprocess_jobs", "job_id", onDelete: .cascade))
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("width", .int)
            .field("height", .int)
            .field("face_count", .int, .required)
            .field("model_version", .string, .required)
            .unique(on: "job_id", "photo_id")
            .create()
        try await database.schema("reprocess_faces")
            .field("job_id", .string, .required, .references("reprocess_jobs", "job_id", onDelete: .cascade))
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("face_index", .int, .required)
            .field("vector", .data, .required)
            .field("bbox_x1", .int, .required)
            .field("bbox_y1", .int, .required)
            .field("bbox_x2", .int, .required)
            .field("bbox_y2", .int, .required)
            .field("confidence", .double, .required)
            .field("model_version", .string, .required)
            .unique(on: "job_id", "photo_id", "face_index")
            .create()
        try await (database as! any SQLDatabase).create(index: "reprocess_jobs_status").on("reprocess_jobs").column("status").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("reprocess_faces").delete()
        try await database.schema("reprocess_photos").delete()
        try await database.schema("reprocess_jobs").delete()
    }
}
