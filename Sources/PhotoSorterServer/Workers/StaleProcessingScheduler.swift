import Logging

/// Marks photos stuck in PROCESSING longer than the timeout FAILED (their result was lost: ML crash,
/// dropped callback), counting a retry so the retry scheduler picks them up after the backoff.
struct StaleProcessingScheduler: Sendable {
    let database: PhotoSorterDatabase
    let statuses: PhotoStatusStore
    let timeoutSeconds: Double
    let logger: Logger

    /// One round; returns the photo ids marked FAILED.
    @discardableResult
    func runOnce() async throws -> [Int64] {
        let cutoff = nowMs() - Int64(timeoutSeconds * 1000)
        let rows = try await database.sql.raw("""
            SELECT id FROM photos WHERE status = 'PROCESSING' AND processing_started_at < \(bind: cutoff)
            """).all()
        var marked: [Int64] = []
        for row in rows {
            let id = try row.decode(column: "id", as: Int64.self)
            if try await statuses.markFailed(id, error: "no result within \(Int(timeoutSeconds)) s (processing timed out)") {
                marked.append(id)
            }
        }
        if !marked.isEmpty {
            logger.warning("stale PROCESSING photos marked FAILED", metadata: ["count": "\(marked.count)", "photo_ids": "\(marked.prefix(20))"])
        }
        return marked
    }
}
