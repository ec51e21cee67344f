import Logging

/// Puts FAILED photos whose backoff has passed and that have retries left back to READY.
/// Photos the ML service itself failed (unreadable file) have no retry time and stay FAILED.
/// Each round also lets the queue republish what did not reach it (Kafka: FAILED batches).
struct RetryScheduler: Sendable {
    let database: PhotoSorterDatabase
    let queue: any WorkQueue
    let maxRetries: Int
    let logger: Logger

    /// One round; returns the photos requeued.
    @discardableResult
    func runOnce() async throws -> [WorkItem] {
        let now = nowMs()
        let rows = try await database.sql.raw("""
            UPDATE photos SET status = 'READY', next_attempt_at = NULL, updated_at = \(bind: now)
            WHERE status = 'FAILED' AND next_attempt_at IS NOT NULL AND next_attempt_at <= \(bind: now)
                AND retry_count <= \(bind: maxRetries)
            RETURNING id, path, attempt
            """).all()
        let items = try rows.map(WorkItem.init(row:))
        if !items.isEmpty {
            try await queue.enqueue(items)
            logger.info("failed photos requeued for retry", metadata: ["count": "\(items.count)", "photo_ids": "\(items.prefix(20).map(\.photoID))"])
        }
        _ = try await queue.republish()
        return items
    }
}
