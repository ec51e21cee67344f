import Vapor

/// POST /ingest-folder, GET /ingest-status/{jobId}, GET /ingest-jobs.
struct IngestController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("ingest-folder", use: ingestFolder)
        routes.get("ingest-status", ":jobId", use: status)
        routes.get("ingest-jobs", use: jobs)
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

    func jobs(req: Request) async throws -> IngestJobList {
        let limit = min(max(req.query[Int.self, at: "limit"] ?? 50, 1), 500)
        return IngestJobList(jobs: try await req.photoSorter.reads.recentJobs(limit: limit))
    }
}
