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
        let items = try await PhotosTable.requeueDueRetries(maxRetries: maxRetries, on: database.sql)
        if !items.isEmpty {
            try await queue.enqueue(items)
            logger.info("failed photos requeued for retry", metadata: ["count": "\(items.count)", "photo_ids": "\(items.prefix(20).map(\.photoID))"])
        }
        _ = try await queue.republish()
        return items
    }
}
