import Fluent
import SQLKit

// Schema of photo-sorter, one migration per table. Times are integer milliseconds since 1970 (`*_at`
// columns): they compare and sort identically on SQLite and PostgreSQL, which the queue and the
// schedulers rely on.

/// `photos`: one canonical row per file path. Batch/job state lives in `photo_ingest_map`, not here.
struct CreatePhotos: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("photos")
            .field("id", .int64, .identifier(auto: true))
            .field("path", .string, .required)
            .field("filename", .string, .required)
            .field("format", .string, .required)
            .field("filesize", .int64, .required)
            .field("modified_at", .int64, .required)
            .field("sample_hash", .string, .required)
            .field("full_hash", .string)
            .field("width", .int)
            .field("height", .int)
            .field("status", .string, .required)
            .field("retry_count", .int, .required)
            .field("attempt", .int, .required)
            .field("last_error", .string)
            .field("processing_started_at", .int64)
            .field("next_attempt_at", .int64)
            .field("no_faces", .bool)
            .field("face_count", .int)
            .field("person_ids", .string)
            .field("model_version", .string)
            .field("ml_ms", .double)
            .field("created_at", .int64, .required)
            .field("updated_at", .int64, .required)
            .unique(on: "path")
            .create()
        let sql = database as! any SQLDatabase
        // Claims: READY photos due now, oldest first. Schedulers: FAILED due for retry, stale PROCESSING.
        try await sql.create(index: "photos_status_due").on("photos").column("status").column("next_attempt_at").run()
        try await sql.create(index: "photos_status_started").on("photos").column("status").column("processing_started_at").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("photos").delete()
    }
}

/// `persons`: one row per real person; ids are what users see and never change.
struct CreatePersons: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("persons")
            .field("id", .int64, .identifier(auto: true))
            .field("display_name", .string)
            .field("face_count", .int, .required)
            .field("photo_count", .int, .required)
            .field("representative_photo_id", .int64)
            .field("created_at", .int64, .required)
            .field("updated_at", .int64, .required)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("persons").delete()
    }
}

/// `embeddings`: every detected face (float32 little-endian vector, box, scores) and the person it resolved to.
struct CreateEmbeddings: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("embeddings")
            .field("id", .int64, .identifier(auto: true))
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("person_id", .int64, .required, .references("persons", "id"))
            .field("face_index", .int, .required)
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
            .field("created_at", .int64, .required)
            .create()
        let sql = database as! any SQLDatabase
        try await sql.create(index: "embeddings_photo").on("embeddings").column("photo_id").run()
        try await sql.create(index: "embeddings_person").on("embeddings").column("person_id").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("embeddings").delete()
    }
}

/// `photo_persons`: which persons appear in which photo (deduplicated; mirrors count once).
struct CreatePhotoPersons: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("photo_persons")
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("person_id", .int64, .required, .references("persons", "id"))
            .unique(on: "photo_id", "person_id")
            .create()
        try await (database as! any SQLDatabase).create(index: "photo_persons_person").on("photo_persons").column("person_id").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("photo_persons").delete()
    }
}

/// `ingest_jobs`: one row per POST /ingest-folder with its counters and resume point.
struct CreateIngestJobs: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("ingest_jobs")
            .field("job_id", .string, .identifier(auto: false))
            .field("job_name", .string)
            .field("path", .string, .required)
            .field("recursive", .bool, .required)
            .field("batch_size", .int, .required)
            .field("dry_run", .bool, .required)
            .field("requested_by", .string)
            .field("status", .string, .required)
            .field("scanned_count", .int, .required)
            .field("inserted_count", .int, .required)
            .field("skipped_count", .int, .required)
            .field("queued_count", .int, .required)
            .field("rejected_count", .int, .required)
            .field("completed_batches", .int, .required)
            .field("last_error", .string)
            .field("created_at", .int64, .required)
            .field("finished_at", .int64)
            .create()
        try await (database as! any SQLDatabase).create(index: "ingest_jobs_status").on("ingest_jobs").column("status").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("ingest_jobs").delete()
    }
}

/// `ingest_batches`: one row per batch of `batch_size` scanned files.
struct CreateIngestBatches: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("ingest_batches")
            .field("id", .int64, .identifier(auto: true))
            .field("job_id", .string, .required, .references("ingest_jobs", "job_id", onDelete: .cascade))
            .field("batch_index", .int, .required)
            .field("photo_count", .int, .required)
            .field("inserted_count", .int, .required)
            .field("status", .string, .required)
            .field("created_at", .int64, .required)
            .field("queued_at", .int64)
            .unique(on: "job_id", "batch_index")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("ingest_batches").delete()
    }
}

/// `photo_ingest_map`: photo → batch → job, for status aggregation per job.
struct CreatePhotoIngestMap: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("photo_ingest_map")
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("job_id", .string, .required, .references("ingest_jobs", "job_id", onDelete: .cascade))
            .field("batch_id", .int64, .required, .references("ingest_batches", "id", onDelete: .cascade))
            .unique(on: "job_id", "photo_id")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("photo_ingest_map").delete()
    }
}

/// `processed_callbacks`: makes POST /callback/photo-processed idempotent; the stored answer is replayed.
struct CreateProcessedCallbacks: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("processed_callbacks")
            .field("callback_key", .string, .identifier(auto: false))
            .field("photo_id", .int64, .required)
            .field("response", .string, .required)
            .field("created_at", .int64, .required)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("processed_callbacks").delete()
    }
}

/// All migrations in the order they must run.
let schemaMigrations: [any Migration] = [
    CreatePhotos(), CreatePersons(), CreateEmbeddings(), CreatePhotoPersons(),
    CreateIngestJobs(), CreateIngestBatches(), CreatePhotoIngestMap(), CreateProcessedCallbacks(),
    CreateReprocessTables(), CreatePeopleTables(), CreateMediaTables(), CreateIdentityChanges(),
    CreateIngestRejections(), CreateIdentitySnapshots(), AddScaleIndexes(), AddReclusterMarks(), AddPhotoQuarterTurns(), AddTakenDates(), DropPhotoFullHash(), AddFileFollowing(), KeepEmbeddingIDsUnique(), AddXMPFaceNames(), IndexPersonsForKeysetPaging(), AddFaceLooks(), AllowUnsortedFaces(), IndexRunnerUps(),
]
