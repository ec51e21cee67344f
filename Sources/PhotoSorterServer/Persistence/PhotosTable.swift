import Foundation
import PhotoSorterCore
import SQLKit

/// The one writer of `photos`, the photo lifecycle: inserted READY by a scan (dated by the file until analysed),
/// claimed PROCESSING by a queue, PROCESSED or FAILED by its result, back to READY by a retry, a busy service, a
/// stale lease or a changed file; plus what an analysis, a correction or a reprocess derives onto the row
/// (size, turn, date, `person_ids`). Each transition is written one way only.
///
/// Instance methods run on their own; the static ones join the caller's transaction.
struct PhotosTable: Sendable {
    let database: PhotoSorterDatabase
    let config: ServiceConfig

    /// Delay before retry number `retryCount` (1-based): `retryBackoffSeconds * 2^(retryCount-1)`.
    func backoffMs(afterFailures retryCount: Int) -> Int64 {
        Int64(config.retryBackoffSeconds * 1000 * Double(1 << min(max(retryCount - 1, 0), 16)))
    }

    /// A failed attempt: FAILED, retry_count + 1, the error, and the time the retry scheduler may requeue it.
    /// Only a photo still in `expected` state changes, so a late result is never overwritten.
    @discardableResult
    func markFailed(_ photoID: Int64, error: String, expected: PhotoStatus? = .processing) async throws -> Bool {
        let now = nowMs()
        let rows = try await database.sql.raw("""
            UPDATE photos SET status = 'FAILED', retry_count = retry_count + 1, last_error = \(bind: String(error.prefix(2000))),
                processing_started_at = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: photoID)\(unsafeRaw: expected.map { " AND status = '\($0.rawValue)'" } ?? "")
            RETURNING retry_count
            """).all()
        guard let row = rows.first else { return false }
        let retryCount = try row.decode(column: "retry_count", as: Int.self)
        try await database.sql.raw("""
            UPDATE photos SET next_attempt_at = \(bind: now + backoffMs(afterFailures: retryCount)) WHERE id = \(bind: photoID)
            """).run()
        return true
    }

    /// Back to the queue without counting a failure (ML service busy), due after `delayMs`.
    func requeue(_ photoID: Int64, delayMs: Int64) async throws {
        let now = nowMs()
        try await database.sql.raw("""
            UPDATE photos SET status = 'READY', attempt = attempt - 1, processing_started_at = NULL,
                next_attempt_at = \(bind: now + delayMs), updated_at = \(bind: now)
            WHERE id = \(bind: photoID) AND status = 'PROCESSING'
            """).run()
    }

    /// Sets a status by hand (PUT /photo/update-status). READY clears any wait so the photo is claimed next.
    func set(_ photoID: Int64, to status: PhotoStatus, error: String?) async throws -> Bool {
        let now = nowMs()
        switch status {
        case .failed:
            return try await markFailed(photoID, error: error ?? "marked FAILED by update-status", expected: nil)
        case .ready:
            return try await updated(database.sql.raw("""
                UPDATE photos SET status = 'READY', next_attempt_at = NULL, processing_started_at = NULL, updated_at = \(bind: now)
                WHERE id = \(bind: photoID) RETURNING id
                """))
        case .processing:
            return try await updated(database.sql.raw("""
                UPDATE photos SET status = 'PROCESSING', processing_started_at = \(bind: now), updated_at = \(bind: now)
                WHERE id = \(bind: photoID) RETURNING id
                """))
        case .processed:
            return try await updated(database.sql.raw("""
                UPDATE photos SET status = 'PROCESSED', processing_started_at = NULL, next_attempt_at = NULL, updated_at = \(bind: now)
                WHERE id = \(bind: photoID) RETURNING id
                """))
        }
    }

    private func updated(_ query: SQLRawBuilder) async throws -> Bool {
        try await !query.all().isEmpty
    }

    // MARK: Queues and schedulers

    /// Up to `limit` READY photos whose wait is over, PROCESSING from now (`skipLocked`: PostgreSQL's
    /// `FOR UPDATE SKIP LOCKED`, so concurrent claimers never take the same photo).
    static func claimReady(limit: Int, skipLocked: String, on db: any SQLDatabase) async throws -> [WorkItem] {
        let now = nowMs()
        return try await db.raw("""
            UPDATE photos SET status = 'PROCESSING', processing_started_at = \(bind: now), attempt = attempt + 1,
                updated_at = \(bind: now)
            WHERE id IN (SELECT id FROM photos WHERE status = 'READY'
                AND (next_attempt_at IS NULL OR next_attempt_at <= \(bind: now))
                ORDER BY id LIMIT \(bind: limit)\(unsafeRaw: skipLocked))
            RETURNING id, path, attempt
            """).all().map(WorkItem.init(row:))
    }

    /// Those of `ids` that are READY, PROCESSING from now (a Kafka message is a hint; the row is the lease).
    static func claim(_ ids: [Int64], on db: any SQLDatabase) async throws -> [WorkItem] {
        let now = nowMs()
        return try await db.raw("""
            UPDATE photos SET status = 'PROCESSING', processing_started_at = \(bind: now), attempt = attempt + 1,
                updated_at = \(bind: now)
            WHERE id IN (\(binds: ids)) AND status = 'READY'
            RETURNING id, path, attempt
            """).all().map(WorkItem.init(row:))
    }

    /// FAILED photos whose backoff is over and that have retries left, READY again.
    static func requeueDueRetries(maxRetries: Int, on db: any SQLDatabase) async throws -> [WorkItem] {
        let now = nowMs()
        return try await db.raw("""
            UPDATE photos SET status = 'READY', next_attempt_at = NULL, updated_at = \(bind: now)
            WHERE status = 'FAILED' AND next_attempt_at IS NOT NULL AND next_attempt_at <= \(bind: now)
                AND retry_count <= \(bind: maxRetries)
            RETURNING id, path, attempt
            """).all().map(WorkItem.init(row:))
    }

    /// Every PROCESSING photo READY again (SQLite at start-up: its leases died with the last process). Returns how many.
    static func releaseAllProcessing(on db: any SQLDatabase) async throws -> Int {
        try await db.raw("UPDATE photos SET status = 'READY', processing_started_at = NULL WHERE status = 'PROCESSING' RETURNING id").all().count
    }

    // MARK: Scans

    /// New photos, READY, dated by their file's time until their analysis reads their own date; a path already
    /// stored is left alone. Returns the inserted ones.
    static func insertScanned(_ photos: [InspectedPhoto], now: Int64, on tx: any SQLDatabase) async throws -> [WorkItem] {
        guard !photos.isEmpty else { return [] }
        var insert = tx.insert(into: "photos").columns(
            "path", "filename", "format", "filesize", "modified_at", "sample_hash", "status", "retry_count", "attempt",
            "taken_at", "created_at", "updated_at")
        for photo in photos {
            insert = insert.values(SQLBind(photo.file.path), SQLBind(photo.file.filename), SQLBind(photo.format.rawValue),
                                   SQLBind(photo.file.size), SQLBind(photo.file.modifiedAtMs), SQLBind(photo.sampleHash),
                                   SQLBind(PhotoStatus.ready.rawValue), SQLBind(0), SQLBind(0),
                                   SQLBind(TakenDate.fileTime(modifiedAtMs: photo.file.modifiedAtMs).local), SQLBind(now), SQLBind(now))
        }
        return try await insert.ignoringConflicts(with: ["path"]).returning("id", "path", "attempt").all().map(WorkItem.init(row:))
    }

    /// One photo to analyse right away (POST /classify-photo by path): PROCESSING at once; a stored path is left alone.
    static func insertForClassify(_ photo: InspectedPhoto, now: Int64, on db: any SQLDatabase) async throws {
        let file = photo.file
        try await db.raw("""
            INSERT INTO photos (path, filename, format, filesize, modified_at, sample_hash, status, retry_count, attempt, taken_at,
                created_at, updated_at)
            VALUES (\(bind: file.path), \(bind: file.filename), \(bind: photo.format.rawValue), \(bind: file.size), \(bind: file.modifiedAtMs),
                \(bind: photo.sampleHash), 'PROCESSING', 0, 1, \(bind: TakenDate.fileTime(modifiedAtMs: file.modifiedAtMs).local),
                \(bind: now), \(bind: now))
            ON CONFLICT (path) DO NOTHING
            """).run()
    }

    /// A file touched or copied over with the same content: its new size and time; its results stay.
    static func recordTouched(_ id: Int64, file: ScannedFile, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET filesize = \(bind: file.size), modified_at = \(bind: file.modifiedAtMs) WHERE id = \(bind: id)
            """).run()
    }

    /// A new picture at a stored path: READY again under the same id, every result of the old one cleared.
    static func resetChanged(_ id: Int64, to photo: InspectedPhoto, now: Int64, on tx: any SQLDatabase) async throws -> WorkItem {
        let row = try await tx.raw("""
            UPDATE photos SET filesize = \(bind: photo.file.size), modified_at = \(bind: photo.file.modifiedAtMs),
                sample_hash = \(bind: photo.sampleHash), status = 'READY', retry_count = 0, last_error = NULL,
                next_attempt_at = NULL, processing_started_at = NULL, no_faces = NULL, face_count = NULL, person_ids = NULL,
                width = NULL, height = NULL, taken_at = \(bind: TakenDate.fileTime(modifiedAtMs: photo.file.modifiedAtMs).local),
                taken_offset = NULL, taken_at_source = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: id) RETURNING attempt
            """).first()!
        return WorkItem(photoID: id, path: photo.file.path, attempt: try row.decode(column: "attempt", as: Int.self))
    }

    /// The photo's own date, read from its header for a photo analysed before dates were read (unless its
    /// analysis dated it meanwhile).
    static func date(_ id: Int64, taken: TakenDate, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET taken_at = \(bind: taken.local), taken_offset = \(bind: taken.offset), taken_at_source = \(bind: taken.source.rawValue)
            WHERE id = \(bind: id) AND taken_at_source IS NULL
            """).run()
    }

    // MARK: Results

    /// What an analysis found, PROCESSED: size, turn, faces and persons, model, time spent, date.
    static func markAnalysed(_ payload: CallbackPayload, faceCount: Int, personIDs: [Int64], modelVersion: String, taken: TakenDate,
                             now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET status = 'PROCESSED', width = \(bind: payload.width), height = \(bind: payload.height),
                quarter_turns = \(bind: payload.quarterTurns), no_faces = \(bind: faceCount == 0), face_count = \(bind: faceCount),
                person_ids = \(bind: try personIDsJSON(personIDs)), model_version = \(bind: modelVersion),
                ml_ms = \(bind: payload.meta?.timings?["total_ms"]),
                taken_at = \(bind: taken.local), taken_offset = \(bind: taken.offset), taken_at_source = \(bind: taken.source.rawValue),
                last_error = NULL, processing_started_at = NULL, next_attempt_at = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: payload.photoID)
            """).run()
    }

    /// The ML service reached the file and could not use it: FAILED with no retry time (the same bytes would fail
    /// again; a changed file is queued by the next scan).
    static func markUnusable(_ payload: CallbackPayload, now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET status = 'FAILED', last_error = \(bind: payload.error ?? "ML service reported failure"),
                retry_count = retry_count + 1, processing_started_at = NULL, next_attempt_at = NULL,
                width = \(bind: payload.width), height = \(bind: payload.height), updated_at = \(bind: now)
            WHERE id = \(bind: payload.photoID)
            """).run()
    }

    /// A reprocess's analysis is staged, not applied: the photo is PROCESSED again meanwhile.
    static func markStaged(_ id: Int64, now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET status = 'PROCESSED', last_error = NULL, processing_started_at = NULL, next_attempt_at = NULL,
                updated_at = \(bind: now)
            WHERE id = \(bind: id)
            """).run()
    }

    /// `photo` shows `personIDs` (in face order) after faces moved.
    static func setPersons(_ id: Int64, _ personIDs: [Int64], now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE photos SET person_ids = \(bind: try personIDsJSON(personIDs)), updated_at = \(bind: now) WHERE id = \(bind: id)").run()
    }

    // MARK: Reprocess

    /// Every analysed photo not yet staged for reprocess job `jobID`, READY again. Returns how many.
    static func requeueForReprocess(jobID: String, on tx: any SQLDatabase) async throws -> Int {
        try await tx.raw("""
            UPDATE photos SET status = 'READY', retry_count = 0, last_error = NULL, processing_started_at = NULL,
                next_attempt_at = NULL, updated_at = \(bind: nowMs())
            WHERE status IN ('PROCESSED', 'FAILED')
                AND id NOT IN (SELECT photo_id FROM reprocess_photos WHERE job_id = \(bind: jobID))
            RETURNING id
            """).all().count
    }

    /// A reprocessed photo as its new analysis saw it.
    static func applyReprocessed(_ id: Int64, width: Int?, height: Int?, quarterTurns: Int?, faceCount: Int, personIDs: [Int64],
                                 modelVersion: String, now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET width = \(bind: width), height = \(bind: height), quarter_turns = \(bind: quarterTurns),
                no_faces = \(bind: faceCount == 0), face_count = \(bind: faceCount), person_ids = \(bind: try personIDsJSON(personIDs)),
                model_version = \(bind: modelVersion), updated_at = \(bind: now)
            WHERE id = \(bind: id)
            """).run()
    }

    /// Photos reprocess job `jobID` could not analyse keep their status and reason but show nobody. Returns how many.
    static func clearUnreprocessed(jobID: String, now: Int64, on tx: any SQLDatabase) async throws -> Int {
        try await tx.raw("""
            UPDATE photos SET face_count = 0, person_ids = '[]', updated_at = \(bind: now)
            WHERE id NOT IN (SELECT photo_id FROM reprocess_photos WHERE job_id = \(bind: jobID)) RETURNING id
            """).all().count
    }

    /// `person_ids` as stored: the JSON array of the photo's persons in face order.
    private static func personIDsJSON(_ ids: [Int64]) throws -> String {
        String(decoding: try JSONEncoder().encode(ids), as: UTF8.self)
    }
}
