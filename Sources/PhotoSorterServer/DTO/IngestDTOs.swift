import Vapor

/// Body of POST /ingest-folder (camelCase field names, as README "HTTP API" lists them).
public struct IngestRequest: Content, Sendable {
    public var path: String
    public var recursive: Bool?
    public var batchSize: Int?
    public var jobName: String?
    public var dryRun: Bool?
    public var requestedBy: String?

    public init(path: String, recursive: Bool? = nil, batchSize: Int? = nil, jobName: String? = nil, dryRun: Bool? = nil) {
        self.path = path
        self.recursive = recursive
        self.batchSize = batchSize
        self.jobName = jobName
        self.dryRun = dryRun
    }
}

public struct IngestAccepted: Content, Sendable {
    public var jobId: String
}

/// GET /ingest-status/{jobId}: scan counters plus processing progress of the job's photos, and the entries it did
/// not queue. `scanned` = `queued` + `skipped` + `not_queued_count` (`inserted` instead of `queued` for a dry run).
public struct IngestStatus: Content, Sendable, Equatable {
    public struct Batch: Codable, Sendable, Equatable {
        public var batchIndex: Int
        public var photoCount: Int
        public var insertedCount: Int
        public var status: String

        enum CodingKeys: String, CodingKey {
            case status
            case batchIndex = "batch_index"
            case photoCount = "photo_count"
            case insertedCount = "inserted_count"
        }
    }

    public var jobID: String
    public var jobName: String?
    public var path: String
    /// SCANNING, SCANNED, COMPLETED, FAILED, or ROOT_UNAVAILABLE: the folder was gone, unreadable or empty while
    /// photos were stored under it, so nothing was marked missing (`last_error` says which).
    public var status: String
    public var dryRun: Bool
    /// Scanning finished and every photo of the job is PROCESSED or FAILED with no retry pending.
    public var done: Bool
    public var scanned: Int
    public var inserted: Int
    public var skipped: Int
    /// Entries not queued (not an image, unreadable, …); `notQueuedCount` says the same as `not_queued_count`,
    /// the name the API documents.
    public var rejected: Int
    public var notQueuedCount: Int
    /// The first 100 not-queued entries by path (GET /ingest-status/{jobId} only; the rest are paged by
    /// GET /ingest-jobs/{jobId}/not-queued).
    public var notQueued: [NotQueuedFile]?
    public var queued: Int
    /// Photos found at a new path with their content, their old file gone: same id, faces and corrections.
    public var moved: Int
    /// Photos whose file this scan found gone: MISSING (hidden, their faces out of every person) until they return.
    public var missing: Int
    /// MISSING photos found again (at their path or another), with everything they had.
    public var restored: Int
    /// New paths with the content of an analysed photo still on disk: photos of their own, the analysis reused.
    public var copies: Int
    public var ready: Int
    public var processing: Int
    public var processed: Int
    public var failed: Int
    public var noFaces: Int
    public var faces: Int
    public var personsCreated: Int
    public var personsMatched: Int
    public var lastError: String?
    public var createdAt: Int64
    public var finishedAt: Int64?
    public var batches: [Batch]?

    enum CodingKeys: String, CodingKey {
        case path, status, done, scanned, inserted, skipped, rejected, queued, moved, missing, restored, copies
        case ready, processing, processed, failed
        case faces, batches
        case jobID = "job_id"
        case jobName = "job_name"
        case dryRun = "dry_run"
        case noFaces = "no_faces"
        case personsCreated = "persons_created"
        case personsMatched = "persons_matched"
        case lastError = "last_error"
        case createdAt = "created_at"
        case finishedAt = "finished_at"
        case notQueuedCount = "not_queued_count"
        case notQueued = "not_queued"
    }
}

/// An entry of an ingested folder that was not queued for analysis, with the reason.
public struct NotQueuedFile: Codable, Sendable, Equatable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// GET /ingest-jobs/{jobId}/not-queued: a page of not-queued entries by path; `next_after` (null on the last page)
/// is the `after` of the next page.
public struct NotQueuedPage: Content, Sendable, Equatable {
    public var notQueued: [NotQueuedFile]
    public var nextAfter: String?

    enum CodingKeys: String, CodingKey {
        case notQueued = "not_queued"
        case nextAfter = "next_after"
    }

    public init(notQueued: [NotQueuedFile], nextAfter: String?) {
        self.notQueued = notQueued
        self.nextAfter = nextAfter
    }

    /// As synthesised, except that `next_after` is written as null on the last page.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(notQueued, forKey: .notQueued)
        try container.encode(nextAfter, forKey: .nextAfter)
    }
}

public struct IngestJobList: Content, Sendable {
    public var jobs: [IngestStatus]
}

/// GET /ingest-jobs/{jobId}/failures.
public struct JobFailures: Content, Sendable {
    public var failures: [PhotoFailure]
}
