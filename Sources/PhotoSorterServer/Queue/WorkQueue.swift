/// One photo to process, as carried by a work queue. Keyed by `photoID`: delivering the same item twice
/// is allowed (at-least-once); the callback's idempotency makes the second delivery harmless.
public struct WorkItem: Sendable, Equatable, Codable {
    public let photoID: Int64
    public let path: String
    /// Attempt number of this delivery; part of the callback id so a retry is a different callback.
    public let attempt: Int
}

/// The transport between ingest and workers. The database queue (default) keeps the work in `photos`
/// itself; a Kafka queue would publish `enqueue`d items to `photos-to-process` keyed by photo id and
/// `claim` from its consumer, marking the photos PROCESSING in the database the same way.
public protocol WorkQueue: Sendable {
    /// Makes committed READY photos available to workers.
    func enqueue(_ items: [WorkItem]) async throws
    /// Takes up to `limit` items and marks their photos PROCESSING (the lease the stale scheduler watches).
    func claim(limit: Int) async throws -> [WorkItem]
    /// Photos waiting for a worker, used for ingest backpressure.
    func pendingCount() async throws -> Int
}
