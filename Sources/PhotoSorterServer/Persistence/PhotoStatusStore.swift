import PhotoSorterCore
import SQLKit

/// Status transitions of photos outside the callback, shared by the workers, the schedulers and
/// PUT /photo/update-status so each transition is written one way only.
struct PhotoStatusStore: Sendable {
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
}
