import SQLKit

/// The default work queue: READY rows of `photos` are the queue. A claim is one atomic
/// `UPDATE … WHERE id IN (SELECT … LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING`, so concurrent workers,
/// in one process or several, never take the same photo.
public struct DatabaseWorkQueue: WorkQueue {
    let database: PhotoSorterDatabase

    /// Rows are inserted READY in the ingest transaction; that commit is the enqueue.
    public func enqueue(_ items: [WorkItem], batch: IngestBatchRef?) async throws {}

    public func claim(limit: Int) async throws -> [WorkItem] {
        try await PhotosTable.claimReady(limit: limit, skipLocked: database.skipLockedClause, on: database.sql).sorted { $0.photoID < $1.photoID }
    }

    public func pendingCount() async throws -> Int {
        let row = try await database.sql.raw("SELECT COUNT(*) AS n FROM photos WHERE status = 'READY'").first()
        return try row?.decode(column: "n", as: Int.self) ?? 0
    }
}

extension WorkItem {
    /// A work item from a `photos` row selected or returned with `id, path, attempt`.
    init(row: any SQLRow) throws {
        self.init(photoID: try row.decode(column: "id", as: Int64.self), path: try row.decode(column: "path", as: String.self),
                  attempt: try row.decode(column: "attempt", as: Int.self))
    }
}
