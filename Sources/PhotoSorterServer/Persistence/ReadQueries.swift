import Foundation
import NIOConcurrencyHelpers
import PhotoSorterCore
import SQLKit

/// The read side of the API: photos, persons and ingest jobs as the endpoints show them.
struct ReadQueries: Sendable {
    let database: PhotoSorterDatabase
    let maxRetries: Int
    /// Per job, the last progress aggregation and until when it may be served again (see `jobProgress`).
    private let progressCache = NIOLockedValueBox([String: (progress: JobProgress, validUntil: ContinuousClock.Instant)]())

    init(database: PhotoSorterDatabase, maxRetries: Int) {
        self.database = database
        self.maxRetries = maxRetries
    }

    /// A `photos` row as the photo views need it. Decoded column by column: SQLKit's `Decodable` rows with
    /// snake-case key conversion cost more than the query itself on a 500-photo page.
    struct PhotoRow {
        let id: Int64
        let path: String
        let filename: String
        let status: String
        let width: Int?
        let height: Int?
        let noFaces: Bool?
        let personIds: String?
        let retryCount: Int
        let lastError: String?
        let takenAt: String?
        let takenOffset: String?
        let takenAtSource: String?
        let missingSince: Int64?

        init(_ row: any SQLRow) throws {
            id = try row.decode(column: "id", as: Int64.self)
            path = try row.decode(column: "path", as: String.self)
            filename = try row.decode(column: "filename", as: String.self)
            status = try row.decode(column: "status", as: String.self)
            width = try row.decode(column: "width", as: Int?.self)
            height = try row.decode(column: "height", as: Int?.self)
            noFaces = try row.decode(column: "no_faces", as: Bool?.self)
            personIds = try row.decode(column: "person_ids", as: String?.self)
            retryCount = try row.decode(column: "retry_count", as: Int.self)
            lastError = try row.decode(column: "last_error", as: String?.self)
            takenAt = try row.decode(column: "taken_at", as: String?.self)
            takenOffset = try row.decode(column: "taken_offset", as: String?.self)
            takenAtSource = try row.decode(column: "taken_at_source", as: String?.self)
            missingSince = try row.decode(column: "missing_since", as: Int64?.self)
        }

        /// `person_ids` is the JSON array the callback wrote.
        private static let personIDsDecoder = JSONDecoder()

        func view(detections: [DetectionView]?) throws -> PhotoView {
            PhotoView(photoID: id, path: path, filename: filename, status: PhotoStatus(rawValue: status) ?? .failed,
                      width: width, height: height, noFaces: noFaces,
                      personIDs: try personIds.map { try Self.personIDsDecoder.decode([Int64].self, from: Data($0.utf8)) } ?? [],
                      retryCount: retryCount, lastError: lastError, takenAt: takenAt.map { $0 + (takenOffset ?? "") },
                      // A date whose source is not recorded yet is the file's time the scan gave it.
                      takenAtSource: takenAt == nil ? nil : takenAtSource.flatMap(TakenDate.Source.init(rawValue:)) ?? .mtime,
                      missingSince: missingSince, detections: detections)
        }
    }

    /// Columns of `PhotoRow`, from `photos` aliased `p`.
    static let photoColumns = """
        p.id, p.path, p.filename, p.status, p.width, p.height, p.no_faces, p.person_ids, p.retry_count, p.last_error, \
        p.taken_at, p.taken_offset, p.taken_at_source, p.missing_since
        """

    /// `first_taken` and `last_taken` of the person whose id is `personColumn`: one seek each in
    /// `photo_persons_person_taken`.
    static func takenSpanColumns(of personColumn: String) -> String {
        """
        (SELECT t.taken_at FROM photo_persons t WHERE t.person_id = \(personColumn) AND t.taken_at > '' ORDER BY t.taken_at LIMIT 1) AS first_taken,
        (SELECT t.taken_at FROM photo_persons t WHERE t.person_id = \(personColumn) AND t.taken_at > '' ORDER BY t.taken_at DESC LIMIT 1) AS last_taken
        """
    }

    func photo(_ id: Int64) async throws -> PhotoView {
        guard let row = try await database.sql.raw("SELECT \(unsafeRaw: Self.photoColumns) FROM photos p WHERE p.id = \(bind: id)")
            .first().map(PhotoRow.init) else { throw PhotoSorterError.photoNotFound(id) }
        let detections = try await database.sql.raw("""
            SELECT id, person_id, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence, similarity, created_person
            FROM embeddings WHERE photo_id = \(bind: id) ORDER BY face_index
            """).all().map { row in
            DetectionView(embeddingID: try row.decode(column: "id", as: Int64.self),
                          bbox: try BoundingBox(row: row),
                          confidence: try row.decode(column: "confidence", as: Double.self),
                          personID: try row.decode(column: "person_id", as: Int64?.self),
                          similarity: try row.decode(column: "similarity", as: Double?.self),
                          createdPerson: try row.decode(column: "created_person", as: Bool.self))
        }
        return try row.view(detections: detections)
    }

    /// A person; an id absorbed by a merge answers with the survivor, `redirectedFrom` and `mergedInto` set.
    func person(_ id: Int64, exampleLimit: Int = 20, on db: (any SQLDatabase)? = nil) async throws -> PersonView {
        let db = db ?? database.sql
        let columns = "id, display_name, hidden, face_count, photo_count, created_at, merged_into, \(Self.takenSpanColumns(of: "persons.id"))"
        guard var row = try await db.raw("SELECT \(unsafeRaw: columns) FROM persons WHERE id = \(bind: id)").first() else {
            throw PhotoSorterError.personNotFound(id)
        }
        let survivor = try row.decode(column: "merged_into", as: Int64?.self)
        if let survivor {
            guard let survivorRow = try await db.raw("SELECT \(unsafeRaw: columns) FROM persons WHERE id = \(bind: survivor)").first() else {
                throw PhotoSorterError.personNotFound(survivor)
            }
            row = survivorRow
        }
        let personID = survivor ?? id
        let examples = exampleLimit == 0 ? [] : try await db.raw("""
            SELECT p.id, p.path FROM photo_persons pp JOIN photos p ON p.id = pp.photo_id
            WHERE pp.person_id = \(bind: personID) ORDER BY pp.photo_id LIMIT \(bind: exampleLimit)
            """).all().map {
            PersonView.ExamplePhoto(photoID: try $0.decode(column: "id", as: Int64.self), path: try $0.decode(column: "path", as: String.self))
        }
        return PersonView(personID: personID, displayName: try row.decode(column: "display_name", as: String?.self),
                          hidden: try row.decode(column: "hidden", as: Bool.self),
                          faceCount: try row.decode(column: "face_count", as: Int.self),
                          photoCount: try row.decode(column: "photo_count", as: Int.self),
                          createdAt: try row.decode(column: "created_at", as: Int64.self),
                          examplePhotos: examples, firstTaken: try row.decode(column: "first_taken", as: String?.self),
                          lastTaken: try row.decode(column: "last_taken", as: String?.self), representativeEmbedding: nil,
                          redirectedFrom: survivor == nil ? nil : id, mergedInto: survivor)
    }

    private struct JobRow: Decodable {
        let jobId: String
        let jobName: String?
        let path: String
        let status: String
        let dryRun: Bool
        let scannedCount: Int
        let insertedCount: Int
        let skippedCount: Int
        let queuedCount: Int
        let rejectedCount: Int
        let movedCount: Int
        let missingCount: Int
        let restoredCount: Int
        let copiesCount: Int
        let lastError: String?
        let createdAt: Int64
        let finishedAt: Int64?
    }

    /// Job counters plus the processing state of the job's photos. A scanned job whose photos have all
    /// reached a final state is reported (and stored) as COMPLETED. `detailed` adds the batches and the first
    /// 100 not-queued entries.
    func ingestStatus(_ jobID: String, detailed: Bool = true) async throws -> IngestStatus {
        guard let job = try await database.sql.raw("SELECT * FROM ingest_jobs WHERE job_id = \(bind: jobID)")
            .first(decoding: JobRow.self, keyDecodingStrategy: .convertFromSnakeCase) else { throw PhotoSorterError.jobNotFound(jobID) }
        var progress = try await jobProgress(jobID, since: job.createdAt, allowCached: true)
        // "Done" is never decided on a cached aggregation: it may predate the scan's last batches.
        if job.status != "SCANNING" && progress.nothingPending {
            progress = try await jobProgress(jobID, since: job.createdAt, allowCached: false)
        }
        let counts = progress.counts, faces = progress.faces, noFaces = progress.noFaces
        let ready = counts["READY"] ?? 0, processing = counts["PROCESSING"] ?? 0
        var status = job.status
        let done = status != "SCANNING" && progress.nothingPending
        if status == "SCANNED" && done {
            status = "COMPLETED"
            try await database.sql.raw("UPDATE ingest_jobs SET status = 'COMPLETED' WHERE job_id = \(bind: jobID) AND status = 'SCANNED'").run()
        }
        let batches = detailed ? try await database.sql.raw("""
            SELECT batch_index, photo_count, inserted_count, status FROM ingest_batches WHERE job_id = \(bind: jobID) ORDER BY batch_index
            """).all(decoding: IngestStatus.Batch.self) : nil
        let firstNotQueued = detailed ? try await notQueued(ofJob: jobID, limit: 100) : nil
        return IngestStatus(
            jobID: job.jobId, jobName: job.jobName, path: job.path, status: status, dryRun: job.dryRun, done: done,
            scanned: job.scannedCount, inserted: job.insertedCount, skipped: job.skippedCount, rejected: job.rejectedCount,
            notQueuedCount: job.rejectedCount, notQueued: firstNotQueued,
            queued: job.queuedCount, moved: job.movedCount, missing: job.missingCount, restored: job.restoredCount,
            copies: job.copiesCount, ready: ready, processing: processing, processed: counts["PROCESSED"] ?? 0,
            failed: counts["FAILED"] ?? 0, noFaces: noFaces, faces: faces,
            personsCreated: progress.personsCreated, personsMatched: progress.personsMatched,
            lastError: job.lastError, createdAt: job.createdAt, finishedAt: job.finishedAt, batches: batches)
    }

    /// What a job's photos have become: counts by status, faces, persons created and matched.
    struct JobProgress: Sendable {
        var counts: [String: Int] = [:]
        var faces = 0, noFaces = 0, failedRetrying = 0, personsCreated = 0, personsMatched = 0

        /// No photo of the job is waiting for (or in) analysis or a retry.
        var nothingPending: Bool { (counts["READY"] ?? 0) == 0 && (counts["PROCESSING"] ?? 0) == 0 && failedRetrying == 0 }
    }

    /// `JobProgress` aggregates every photo of the job (75–200 ms at 100,000 photos on SQLite, whose one connection
    /// the scan then waits for): a result is served again for ten times as long as it took to compute, so pollers
    /// (`sort` asks every 300 ms, the web page every few seconds) spend at most about a tenth of the database's time
    /// on it whatever their number. A small job's aggregation takes a millisecond and is practically always fresh.
    private func jobProgress(_ jobID: String, since createdAt: Int64, allowCached: Bool) async throws -> JobProgress {
        let now = ContinuousClock.now
        if allowCached, let cached = progressCache.withLockedValue({ $0[jobID] }), cached.validUntil > now { return cached.progress }
        var progress = JobProgress()
        for row in try await database.sql.raw("""
            SELECT p.status AS status, COUNT(*) AS n,
                CAST(SUM(CASE WHEN p.status = 'MISSING' THEN 0 ELSE COALESCE(p.face_count, 0) END) AS BIGINT) AS faces,
                CAST(SUM(CASE WHEN p.no_faces AND p.status <> 'MISSING' THEN 1 ELSE 0 END) AS BIGINT) AS no_faces,
                CAST(SUM(CASE WHEN p.status = 'FAILED' AND p.next_attempt_at IS NOT NULL AND p.retry_count <= \(bind: maxRetries)
                    THEN 1 ELSE 0 END) AS BIGINT) AS retrying
            FROM photo_ingest_map m JOIN photos p ON p.id = m.photo_id WHERE m.job_id = \(bind: jobID) GROUP BY p.status
            """).all() {
            progress.counts[try row.decode(column: "status", as: String.self)] = try row.decode(column: "n", as: Int.self)
            progress.faces += try row.decode(column: "faces", as: Int?.self) ?? 0
            progress.noFaces += try row.decode(column: "no_faces", as: Int?.self) ?? 0
            progress.failedRetrying += try row.decode(column: "retrying", as: Int?.self) ?? 0
        }
        // Faces stored since the job started: a re-ingest that finds only known photos created nobody.
        if let persons = try await database.sql.raw("""
            SELECT COUNT(DISTINCT CASE WHEN e.created_person THEN e.person_id END) AS created,
                CAST(SUM(CASE WHEN e.created_person THEN 0 ELSE 1 END) AS BIGINT) AS matched
            FROM photo_ingest_map m JOIN embeddings e ON e.photo_id = m.photo_id
            WHERE m.job_id = \(bind: jobID) AND e.created_at >= \(bind: createdAt)
            """).first() {
            progress.personsCreated = try persons.decode(column: "created", as: Int?.self) ?? 0
            progress.personsMatched = try persons.decode(column: "matched", as: Int?.self) ?? 0
        }
        let finished = ContinuousClock.now
        progressCache.withLockedValue { $0[jobID] = (progress, finished + (finished - now) * 10) }
        return progress
    }

    func recentJobs(limit: Int) async throws -> [IngestStatus] {
        var jobs: [IngestStatus] = []
        for row in try await database.sql.raw("SELECT job_id FROM ingest_jobs ORDER BY created_at DESC LIMIT \(bind: limit)").all() {
            jobs.append(try await ingestStatus(try row.decode(column: "job_id", as: String.self), detailed: false))
        }
        return jobs
    }

    /// Photos by status, for /health and the sort command's progress.
    func statusCounts() async throws -> [PhotoStatus: Int] {
        var counts: [PhotoStatus: Int] = [:]
        for row in try await database.sql.raw("SELECT status, COUNT(*) AS n FROM photos GROUP BY status").all() {
            if let status = PhotoStatus(rawValue: try row.decode(column: "status", as: String.self)) {
                counts[status] = try row.decode(column: "n", as: Int.self)
            }
        }
        return counts
    }
}

/// A photo of a job that ended FAILED, with its reason.
public struct PhotoFailure: Codable, Sendable {
    public var photoID: Int64
    public var path: String
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case path, error
        case photoID = "photo_id"
    }
}

extension ReadQueries {
    func failures(ofJob jobID: String, limit: Int = .max) async throws -> [PhotoFailure] {
        try await database.sql.raw("""
            SELECT p.id, p.path, p.last_error FROM photo_ingest_map m JOIN photos p ON p.id = m.photo_id
            WHERE m.job_id = \(bind: jobID) AND p.status = 'FAILED' ORDER BY p.id LIMIT \(bind: limit)
            """).all().map {
            PhotoFailure(photoID: try $0.decode(column: "id", as: Int64.self), path: try $0.decode(column: "path", as: String.self),
                         error: try $0.decode(column: "last_error", as: String?.self))
        }
    }

    /// Throws `jobNotFound` unless the ingest job exists.
    func requireJob(_ jobID: String) async throws {
        guard try await database.sql.raw("SELECT 1 AS found FROM ingest_jobs WHERE job_id = \(bind: jobID)").first() != nil else {
            throw PhotoSorterError.jobNotFound(jobID)
        }
    }

    /// The job's not-queued entries by path, those after `after` (exclusive).
    func notQueued(ofJob jobID: String, after: String? = nil, limit: Int = .max) async throws -> [NotQueuedFile] {
        try await database.sql.raw("""
            SELECT path, reason FROM ingest_rejections WHERE job_id = \(bind: jobID) AND path > \(bind: after ?? "")
            ORDER BY path LIMIT \(bind: limit)
            """).all(decoding: NotQueuedFile.self)
    }

    /// Seconds the ML service reported spending on the job's photos finished since `sinceMs`.
    func mlSeconds(ofJob jobID: String, since sinceMs: Int64) async throws -> Double {
        try await database.sql.raw("""
            SELECT CAST(SUM(p.ml_ms) AS DOUBLE PRECISION) AS ms FROM photo_ingest_map m JOIN photos p ON p.id = m.photo_id
            WHERE m.job_id = \(bind: jobID)
                AND p.id IN (SELECT photo_id FROM processed_callbacks WHERE created_at >= \(bind: sinceMs))
            """).first()?.decode(column: "ms", as: Double?.self).map { $0 / 1000 } ?? 0
    }

    /// Faces of the job's photos that are in no person (unsure, matched no one).
    func unsortedFaces(ofJob jobID: String) async throws -> Int {
        try await database.sql.raw("""
            SELECT COUNT(*) AS n FROM embeddings e JOIN photo_ingest_map m ON m.photo_id = e.photo_id
            WHERE m.job_id = \(bind: jobID) AND e.person_id IS NULL
            """).first()!.decode(column: "n", as: Int.self)
    }

    /// When the last result for the job's photos arrived (ms since 1970), at or after `sinceMs`; nil when none did.
    func lastCallbackMs(ofJob jobID: String, since sinceMs: Int64) async throws -> Int64? {
        try await database.sql.raw("""
            SELECT MAX(c.created_at) AS at FROM processed_callbacks c JOIN photo_ingest_map m ON m.photo_id = c.photo_id
            WHERE m.job_id = \(bind: jobID) AND c.created_at >= \(bind: sinceMs)
            """).first()?.decode(column: "at", as: Int64?.self)
    }
}

extension PhotoSorterServices {
    public func ingestStatus(_ jobID: String) async throws -> IngestStatus {
        try await reads.ingestStatus(jobID, detailed: false)
    }

    /// Every entry the job did not queue, by path, with its reason.
    public func notQueued(ofJob jobID: String) async throws -> [NotQueuedFile] {
        try await reads.notQueued(ofJob: jobID)
    }

    /// Who is in the photos below `folder` (inside the allowed roots, as an ingest's folder).
    public func people(inFolder folder: String) async throws -> PeopleInPhotos {
        try await reads.people(inFolder: try ingest.resolveFolder(folder))
    }

    public func failures(ofJob jobID: String) async throws -> [PhotoFailure] {
        try await reads.failures(ofJob: jobID)
    }

    public func mlSeconds(ofJob jobID: String, since sinceMs: Int64) async throws -> Double {
        try await reads.mlSeconds(ofJob: jobID, since: sinceMs)
    }

    public func unsortedFaces(ofJob jobID: String) async throws -> Int {
        try await reads.unsortedFaces(ofJob: jobID)
    }

    public func lastCallbackMs(ofJob jobID: String, since sinceMs: Int64) async throws -> Int64? {
        try await reads.lastCallbackMs(ofJob: jobID, since: sinceMs)
    }
}
