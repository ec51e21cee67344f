import Logging

/// Marks photos stuck in PROCESSING FAILED, counting a retry so the retry scheduler picks them up after the backoff:
/// those older than the timeout (their result was lost: ML crash, dropped callback), and at once those handed over
/// before every ML service (re)started (`mlStartedAtMs`), whose result was lost with the process that held them —
/// without this, a killed ML service kept the workers' slots of its photos busy for the whole timeout (600 s).
struct StaleProcessingScheduler: Sendable {
    let database: PhotoSorterDatabase
    let statuses: PhotosTable
    let timeoutSeconds: Double
    /// The earliest start of the ML services (`MLClient.earliestStartMs`); nil when unknown.
    let mlStartedAtMs: @Sendable () async -> Int64?
    /// How long after its claim a photo may still reach an ML service (the 2 s connect timeout of each service tried
    /// in turn, and a margin): one claimed just before a restart may be held by the new process. Erring late only
    /// costs a second analysis, whose result the callback's duplicate check drops.
    let handOverGraceMs: Int64
    let logger: Logger

    /// One round; returns the photo ids marked FAILED.
    @discardableResult
    func runOnce() async throws -> [Int64] {
        let rows = try await database.sql.raw("""
            SELECT id, processing_started_at FROM photos WHERE status = 'PROCESSING' AND processing_started_at IS NOT NULL
            """).all()
        guard !rows.isEmpty else { return [] }
        let timedOut = nowMs() - Int64(timeoutSeconds * 1000)
        let lostWithML = await mlStartedAtMs().map { $0 - handOverGraceMs } ?? .min
        var marked: [Int64] = []
        for row in rows {
            let id = try row.decode(column: "id", as: Int64.self)
            let started = try row.decode(column: "processing_started_at", as: Int64.self)
            let reason: String
            if started < timedOut {
                reason = "no result within \(Int(timeoutSeconds)) s (processing timed out)"
            } else if started < lostWithML {
                reason = "the ML service restarted after the photo was handed to it (its result was lost)"
            } else {
                continue
            }
            if try await statuses.markFailed(id, error: reason) {
                marked.append(id)
            }
        }
        if !marked.isEmpty {
            logger.warning("stale PROCESSING photos marked FAILED", metadata: ["count": "\(marked.count)", "photo_ids": "\(marked.prefix(20))"])
        }
        return marked
    }
}
