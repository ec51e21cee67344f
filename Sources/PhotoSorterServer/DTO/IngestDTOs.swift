import Vapor

/// Body of POST /ingest-folder (spec field names).
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

/// GET /ingest-status/{jobId}: scan counters plus processing progress of the job's photos.
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
    public var status: String
    public var dryRun: Bool
    /// Scanning finished and every photo of the job is PROCESSED or FAILED with no retry pending.
    public var done: Bool
    public var scanned: Int
    public var inserted: Int
    public var skipped: Int
    public var rejected: Int
    public var queued: Int
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
        case path, status, done, scanned, inserted, skipped, rejected, queued, ready, processing, processed, failed
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
    }
}

public struct IngestJobList: Content, Sendable {
    public var jobs: [IngestStatus]
}

/// GET /ingest-jobs/{jobId}/failures.
public struct JobFailures: Content, Sendable {
    public var failures: [PhotoFailure]
}
