import Fluent

/// `ingest_rejections`: every entry an ingest job found but did not queue (not an image, empty, unreadable, a FIFO,
/// a symlink it does not follow…), with the reason. Written in the batch's transaction; unique per job and path, so a
/// batch redone after a crash adds nothing twice.
struct CreateIngestRejections: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("ingest_rejections")
            .field("job_id", .string, .required, .references("ingest_jobs", "job_id", onDelete: .cascade))
            .field("path", .string, .required)
            .field("reason", .string, .required)
            .field("created_at", .int64, .required)
            .unique(on: "job_id", "path")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("ingest_rejections").delete()
    }
}
