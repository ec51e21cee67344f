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
        case .missing:
            throw PhotoSorterError.invalidRequest("MISSING is set by a scan that finds the file gone, not by hand")
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
    static func insertScanned(_ photos: [InspectedPhoto], fullHashes: [String: String], now: Int64,
                              on tx: any SQLDatabase) async throws -> [WorkItem] {
        guard !photos.isEmpty else { return [] }
        var insert = tx.insert(into: "photos").columns(
            "path", "filename", "format", "filesize", "modified_at", "sample_hash", "full_hash", "sidecar_stamp", "status", "retry_count",
            "attempt", "taken_at", "created_at", "updated_at")
        for photo in photos {
            insert = insert.values(SQLBind(photo.file.path), SQLBind(photo.file.filename), SQLBind(photo.format.rawValue),
                                   SQLBind(photo.file.size), SQLBind(photo.file.modifiedAtMs), SQLBind(photo.sampleHash),
                                   SQLBind(fullHashes[photo.file.path]), SQLBind(photo.file.sidecarStamp), SQLBind(PhotoStatus.ready.rawValue),
                                   SQLBind(0), SQLBind(0),
                                   SQLBind(TakenDate.fileTime(modifiedAtMs: photo.file.modifiedAtMs).local), SQLBind(now), SQLBind(now))
        }
        return try await insert.ignoringConflicts(with: ["path"]).returning("id", "path", "attempt").all().map(WorkItem.init(row:))
    }

    /// One photo to analyse right away (POST /classify-photo by path): PROCESSING at once; a stored path is left alone.
    static func insertForClassify(_ photo: InspectedPhoto, now: Int64, on db: any SQLDatabase) async throws {
        let file = photo.file
        try await db.raw("""
            INSERT INTO photos (path, filename, format, filesize, modified_at, sample_hash, sidecar_stamp, status, retry_count, attempt,
                taken_at, created_at, updated_at)
            VALUES (\(bind: file.path), \(bind: file.filename), \(bind: photo.format.rawValue), \(bind: file.size), \(bind: file.modifiedAtMs),
                \(bind: photo.sampleHash), \(bind: file.sidecarStamp), 'PROCESSING', 0, 1, \(bind: TakenDate.fileTime(modifiedAtMs: file.modifiedAtMs).local),
                \(bind: now), \(bind: now))
            ON CONFLICT (path) DO NOTHING
            """).run()
    }

    /// A file touched or copied over with the same content: its new size and time; its results stay.
    static func recordTouched(_ id: Int64, file: ScannedFile, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET filesize = \(bind: file.size), modified_at = \(bind: file.modifiedAtMs), sidecar_stamp = \(bind: file.sidecarStamp)
            WHERE id = \(bind: id)
            """).run()
    }

    /// A new picture at a stored path: READY again under the same id, every result of the old one cleared.
    static func resetChanged(_ id: Int64, to photo: InspectedPhoto, fullHash: String?, now: Int64, on tx: any SQLDatabase) async throws -> WorkItem {
        let row = try await tx.raw("""
            UPDATE photos SET filesize = \(bind: photo.file.size), modified_at = \(bind: photo.file.modifiedAtMs),
                sidecar_stamp = \(bind: photo.file.sidecarStamp), sample_hash = \(bind: photo.sampleHash), full_hash = \(bind: fullHash), status = 'READY', retry_count = 0, last_error = NULL,
                next_attempt_at = NULL, processing_started_at = NULL, no_faces = NULL, face_count = NULL, person_ids = NULL,
                width = NULL, height = NULL, taken_at = \(bind: TakenDate.fileTime(modifiedAtMs: photo.file.modifiedAtMs).local),
                taken_offset = NULL, taken_at_source = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: id) RETURNING attempt
            """).first()!
        return WorkItem(photoID: id, path: photo.file.path, attempt: try row.decode(column: "attempt", as: Int.self))
    }

    // MARK: Following the files

    /// A stored photo a new path may be: same sample hash (and so size), with its full hash when it has one.
    struct SameContent: Sendable {
        let id: Int64
        var path: String
        let status: PhotoStatus
        let fullHash: String?
        /// Analysed (faces stored, or none found): its analysis can be reused.
        let analysed: Bool
    }

    /// The stored photos whose sample hash is one of `sampleHashes`, by sample hash.
    static func sameContent(_ sampleHashes: Set<String>, on tx: any SQLDatabase) async throws -> [String: [SameContent]] {
        guard !sampleHashes.isEmpty else { return [:] }
        var bySample: [String: [SameContent]] = [:]
        let hashes = Array(sampleHashes)
        for start in stride(from: 0, to: hashes.count, by: 5_000) {
            for row in try await tx.raw("""
                SELECT id, path, status, full_hash, sample_hash, face_count FROM photos
                WHERE sample_hash IN (\(binds: Array(hashes[start..<min(start + 5_000, hashes.count)]))) ORDER BY id
                """).all() {
                bySample[try row.decode(column: "sample_hash", as: String.self), default: []].append(SameContent(
                    id: try row.decode(column: "id", as: Int64.self), path: try row.decode(column: "path", as: String.self),
                    status: PhotoStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .failed,
                    fullHash: try row.decode(column: "full_hash", as: String?.self),
                    analysed: try row.decode(column: "face_count", as: Int?.self) != nil))
            }
        }
        return bySample
    }

    /// The photo's file is now `file` (moved, renamed, or back after it went missing). A returning photo is
    /// PROCESSED again when its analysis was kept, READY when it had none. Returns its status and, when READY, the
    /// work to queue.
    static func relocate(_ id: Int64, to photo: InspectedPhoto, fullHash: String?, now: Int64,
                         on tx: any SQLDatabase) async throws -> (status: PhotoStatus, work: WorkItem?) {
        let row = try await tx.raw("""
            UPDATE photos SET path = \(bind: photo.file.path), filename = \(bind: photo.file.filename),
                filesize = \(bind: photo.file.size), modified_at = \(bind: photo.file.modifiedAtMs),
                sidecar_stamp = \(bind: photo.file.sidecarStamp), full_hash = COALESCE(\(bind: fullHash), full_hash),
                status = CASE WHEN status <> 'MISSING' THEN status WHEN face_count IS NULL THEN 'READY' ELSE 'PROCESSED' END,
                retry_count = CASE WHEN status = 'MISSING' THEN 0 ELSE retry_count END,
                next_attempt_at = CASE WHEN status = 'MISSING' THEN NULL ELSE next_attempt_at END,
                missing_since = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: id) RETURNING status, attempt
            """).first()!
        let status = PhotoStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .ready
        return (status, status == .ready ? WorkItem(photoID: id, path: photo.file.path, attempt: try row.decode(column: "attempt", as: Int.self)) : nil)
    }

    /// A moved photo: its id, its file now, and the content hash read there.
    struct Move: Sendable {
        let id: Int64
        let photo: InspectedPhoto
        let fullHash: String?
    }

    /// Photos still present whose files moved: path, name, size, time and content hash, in one statement per 500
    /// (a statement per photo was what limited a rescan of moved files on PostgreSQL to 2,600 files/s).
    static func relocate(_ moves: [Move], now: Int64, on tx: any SQLDatabase) async throws {
        for start in stride(from: 0, to: moves.count, by: 500) {
            let rows = moves[start..<min(start + 500, moves.count)].map { move -> SQLQueryString in
                """
                (CAST(\(bind: move.id) AS BIGINT), CAST(\(bind: move.photo.file.path) AS TEXT), CAST(\(bind: move.photo.file.filename) AS TEXT), \
                CAST(\(bind: move.photo.file.size) AS BIGINT), CAST(\(bind: move.photo.file.modifiedAtMs) AS BIGINT), CAST(\(bind: move.fullHash) AS TEXT), \
                CAST(\(bind: move.photo.file.sidecarStamp) AS TEXT))
                """
            }
            // VALUES names its columns column1, column2… on both databases (SQLite cannot alias them in the FROM).
            try await tx.raw("""
                UPDATE photos SET path = v.path, filename = v.filename, filesize = v.filesize, modified_at = v.modified_at,
                    full_hash = COALESCE(v.full_hash, photos.full_hash), sidecar_stamp = v.sidecar_stamp, updated_at = \(bind: now)
                FROM (SELECT column1 AS id, column2 AS path, column3 AS filename, column4 AS filesize, column5 AS modified_at,
                    column6 AS full_hash, column7 AS sidecar_stamp FROM (VALUES \(rows.joined(separator: ", "))) AS moved_rows) AS v
                WHERE photos.id = v.id
                """).run()
        }
    }

    /// A second path with the content of analysed photo `source`: a photo of its own, PROCESSED with the source's
    /// analysis (size, turn, date, face count; the faces are copied by `FacesTable.copy`). Returns its id, or nil
    /// when the path was stored meanwhile.
    static func insertCopy(_ photo: InspectedPhoto, fullHash: String?, of source: Int64, now: Int64, on tx: any SQLDatabase) async throws -> Int64? {
        try await tx.raw("""
            INSERT INTO photos (path, filename, format, filesize, modified_at, sample_hash, full_hash, sidecar_stamp, status, retry_count,
                attempt, width, height, quarter_turns, no_faces, face_count, person_ids, model_version, ml_ms, taken_at, taken_offset,
                taken_at_source, created_at, updated_at)
            SELECT \(bind: photo.file.path), \(bind: photo.file.filename), \(bind: photo.format.rawValue), \(bind: photo.file.size),
                \(bind: photo.file.modifiedAtMs), \(bind: photo.sampleHash), COALESCE(\(bind: fullHash), full_hash),
                \(bind: photo.file.sidecarStamp), 'PROCESSED', 0, 0,
                width, height, quarter_turns, no_faces, face_count, '[]', model_version, 0, taken_at, taken_offset, taken_at_source,
                \(bind: now), \(bind: now)
            FROM photos WHERE id = \(bind: source)
            ON CONFLICT (path) DO NOTHING RETURNING id
            """).first()?.decode(column: "id", as: Int64.self)
    }

    /// A READY photo whose content another photo's analysis already has: PROCESSED with that analysis (the faces
    /// are copied by `FacesTable.copy`). False when it is no longer waiting (claimed meanwhile is fine: PROCESSING).
    static func adoptAnalysis(_ id: Int64, of source: Int64, now: Int64, on tx: any SQLDatabase) async throws -> Bool {
        let source = try await tx.raw("""
            SELECT width, height, quarter_turns, no_faces, face_count, model_version, taken_at, taken_offset, taken_at_source
            FROM photos WHERE id = \(bind: source) AND status = 'PROCESSED'
            """).first()
        guard let source else { return false }
        return try await !tx.raw("""
            UPDATE photos SET status = 'PROCESSED', width = \(bind: try source.decode(column: "width", as: Int?.self)),
                height = \(bind: try source.decode(column: "height", as: Int?.self)),
                quarter_turns = \(bind: try source.decode(column: "quarter_turns", as: Int?.self)),
                no_faces = \(bind: try source.decode(column: "no_faces", as: Bool?.self)),
                face_count = \(bind: try source.decode(column: "face_count", as: Int?.self)),
                model_version = \(bind: try source.decode(column: "model_version", as: String?.self)), ml_ms = 0,
                taken_at = \(bind: try source.decode(column: "taken_at", as: String?.self)),
                taken_offset = \(bind: try source.decode(column: "taken_offset", as: String?.self)),
                taken_at_source = \(bind: try source.decode(column: "taken_at_source", as: String?.self)),
                last_error = NULL, processing_started_at = NULL, next_attempt_at = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: id) AND status IN ('READY', 'PROCESSING') RETURNING id
            """).all().isEmpty
    }

    /// SQL that holds for the paths inside `folder` (every depth, or only its own files): a range of the path
    /// index in byte order ('0' follows '/'), so the sweep of a root is one index range at a million photos.
    static func pathsInside(_ folder: String, recursive: Bool, flavor: DatabaseFlavor) -> SQLQueryString {
        let prefix = folder.hasSuffix("/") ? folder : folder + "/"
        let end = String(prefix.dropLast()) + "0"
        // PostgreSQL compares text by the database's collation; byte order needs "C" (the index serves it when the
        // database's collation is C, as scripts/start-postgres.sh creates it).
        let path: SQLQueryString = flavor == .postgres ? "path COLLATE \"C\"" : "path"
        var condition: SQLQueryString = "\(path) >= \(bind: prefix) AND \(path) < \(bind: end)"
        if !recursive {
            let find: SQLQueryString = flavor == .postgres ? "strpos" : "instr"
            condition = "\(condition) AND \(find)(substr(path, \(literal: prefix.utf8.count + 1)), '/') = 0"
        }
        return condition
    }

    /// Photos now MISSING: no persons shown, the time noted. Call after their faces were parked.
    static func markMissing(_ ids: [Int64], now: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE photos SET status = 'MISSING', missing_since = \(bind: now), person_ids = '[]', processing_started_at = NULL,
                updated_at = \(bind: now)
            WHERE id IN (\(binds: ids))
            """).run()
    }

    /// Photos missing since before `before` (ms), the oldest first.
    static func missing(before: Int64, on db: any SQLDatabase) async throws -> [Int64] {
        try await db.raw("""
            SELECT id FROM photos WHERE status = 'MISSING' AND missing_since < \(bind: before) ORDER BY id
            """).all().map { try $0.decode(column: "id", as: Int64.self) }
    }

    /// Deletes photos for good, with every row that belongs to them (their faces were parked when they went missing).
    static func delete(_ ids: [Int64], on tx: any SQLDatabase) async throws {
        guard !ids.isEmpty else { return }
        for table in ["parked_face_rejections", "parked_faces", "photo_previews", "face_thumbnails", "photo_ingest_map",
                      "reprocess_faces", "reprocess_photos", "processed_callbacks", "photo_persons"] {
            try await tx.raw("DELETE FROM \(ident: table) WHERE photo_id IN (\(binds: ids))").run()
        }
        try await tx.raw("UPDATE persons SET representative_photo_id = NULL WHERE representative_photo_id IN (\(binds: ids))").run()
        try await tx.raw("DELETE FROM photos WHERE id IN (\(binds: ids))").run()
    }

    /// A reprocess replaced every face: the parked faces of missing photos no longer compare, so a photo that
    /// returns is analysed again.
    static func forgetMissingAnalyses(on tx: any SQLDatabase) async throws {
        try await tx.raw("UPDATE photos SET face_count = NULL, no_faces = NULL WHERE status = 'MISSING'").run()
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
