import Vapor

/// POST /ingest-folder, GET /ingest-status/{jobId}, GET /ingest-jobs, GET /ingest-jobs/{jobId}/failures.
struct IngestController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("ingest-folder", use: ingestFolder)
        routes.get("ingest-status", ":jobId", use: status)
        routes.get("ingest-jobs", use: jobs)
        routes.get("ingest-jobs", ":jobId", "failures", use: failures)
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
        _ = try await req.photoSorter.reads.ingestStatus(jobID, includeBatches: false)
        let limit = min(max(req.query[Int.self, at: "limit"] ?? 100, 1), 1000)
        return JobFailures(failures: try await req.photoSorter.reads.failures(ofJob: jobID, limit: limit))
    }

    func jobs(req: Request) async throws -> IngestJobList {
        let limit = min(max(req.query[Int.self, at: "limit"] ?? 50, 1), 500)
        return IngestJobList(jobs: try await req.photoSorter.reads.recentJobs(limit: limit))
    }
}
