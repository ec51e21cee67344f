/// One photo to process, as carried by a work queue. Keyed by `photoID`: delivering the same item twice
/// is allowed (at-least-once); the callback's idempotency makes the second delivery harmless.
public struct WorkItem: Sendable, Equatable, Codable {
    public let photoID: Int64
    public let path: String
    /// Attempt number of this delivery; part of the callback id so a retry is a different callback.
    public let attempt: Int
}

/// The ingest batch (`ingest_batches` row, by job and index) whose committed photos an `enqueue` carries.
public struct IngestBatchRef: Sendable, Hashable {
    public let jobID: String
    public let index: Int
}

/// The transport between ingest and workers. The database queue (default) keeps the work in `photos`
/// itself; the Kafka queue publishes `enqueue`d items to `photos-to-process` keyed by photo id and
/// `claim`s from its consumer group, marking the photos PROCESSING in the database the same way.
/// Either way the database stays the source of truth: a photo is work while its row is READY.
public protocol WorkQueue: Sendable {
    /// Makes committed READY photos available to workers. `batch`: the ingest batch they were committed in
    /// (nil for retries and requeues); a queue that publishes elsewhere records there whether it got through.
    func enqueue(_ items: [WorkItem], batch: IngestBatchRef?) async throws
    /// Takes up to `limit` items and marks their photos PROCESSING (the lease the stale scheduler watches).
    func claim(limit: Int) async throws -> [WorkItem]
    /// Photos waiting for a worker, used for ingest backpressure.
    func pendingCount() async throws -> Int
    /// The dispatcher is done with claimed items: the ML service accepted them, or their outcome (FAILED,
    /// back to READY) is in the database. The Kafka queue commits their offsets here.
    func handedOver(_ items: [WorkItem]) async
    /// One round of the retry scheduler: puts back what should be queued but may not be (the Kafka queue
    /// republishes FAILED or never-published batches and READY photos it has no message for). Returns the count.
    func republish() async throws -> Int
}

extension WorkQueue {
    public func enqueue(_ items: [WorkItem]) async throws { try await enqueue(items, batch: nil) }
    public func handedOver(_ items: [WorkItem]) async {}
    public func republish() async throws -> Int { 0 }
}
