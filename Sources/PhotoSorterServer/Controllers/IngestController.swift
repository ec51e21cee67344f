import Vapor

/// POST /ingest-folder, GET /ingest-status/{jobId}, GET /ingest-jobs, GET /ingest-jobs/{jobId}/failures,
/// GET /ingest-jobs/{jobId}/not-queued.
struct IngestController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("ingest-folder", use: ingestFolder)
        routes.get("ingest-status", ":jobId", use: status)
        routes.get("ingest-jobs", use: jobs)
        routes.get("ingest-jobs", ":jobId", "failures", use: failures)
        routes.get("ingest-jobs", ":jobId", "not-queued", use: notQueued)
    }

    /// Returns 202 with the job id at once; the scan runs in the background.
    func ingestFolder(req: Request) async throws -> Response {
        let body = try req.content.decode(IngestRequest.self)
        let jobID = try await req.photoSorter.ingest.start(body)
        return try await IngestAccepted(jobId: jobID).encodeResponse(status: .accepted, for: req)
    }

    func status(req: Request) async throws -> IngestStatus {
        try await req.photoSorter.reads.ingestStatus(req.parameters.get("jobId")!)
    }

    /// The job's photos that ended FAILED, with reasons: `?limit=` (default 100, max 1000).
    func failures(req: Request) async throws -> JobFailures {
        let jobID = req.parameters.get("jobId")!
        try await req.photoSorter.reads.requireJob(jobID)
        let limit = min(max(try req.optionalQuery(Int.self, "limit") ?? 100, 1), 1000)
        return JobFailures(failures: try await req.photoSorter.reads.failures(ofJob: jobID, limit: limit))
    }

    /// The entries the job did not queue, with reasons, by path: `?limit=` (1…1000, default 500) and `?after=` (the
    /// previous page's `next_after`).
    func notQueued(req: Request) async throws -> NotQueuedPage {
        let jobID = req.parameters.get("jobId")!
        let limit: Int
        switch try req.optionalQuery(String.self, "limit") {
        case nil: limit = 500
        case let raw?:
            guard let value = Int(raw), (1...1000).contains(value) else {
                throw PhotoSorterError.invalidQuery("limit must be an integer from 1 to 1000, got \"\(raw)\"")
            }
            limit = value
        }
        try await req.photoSorter.reads.requireJob(jobID)
        // One more than asked tells whether another page follows.
        let rows = try await req.photoSorter.reads.notQueued(ofJob: jobID, after: try req.optionalQuery(String.self, "after"), limit: limit + 1)
        let page = Array(rows.prefix(limit))
        return NotQueuedPage(notQueued: page, nextAfter: rows.count > limit ? page.last?.path : nil)
    }

    func jobs(req: Request) async throws -> IngestJobList {
        let limit = min(max(try req.optionalQuery(Int.self, "limit") ?? 50, 1), 500)
        return IngestJobList(jobs: try await req.photoSorter.reads.recentJobs(limit: limit))
    }
}
