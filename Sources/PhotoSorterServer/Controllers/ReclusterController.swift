import Vapor

/// POST /recluster starts a re-cluster job; GET /recluster/{jobId} follows it.
struct ReclusterController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("recluster", use: start)
        routes.get("recluster", ":jobId", use: status)
    }

    func start(req: Request) async throws -> Response {
        try req.requireSecret()
        return try await req.photoSorter.recluster.start().encodeResponse(status: .accepted, for: req)
    }

    func status(req: Request) async throws -> ReclusterStatus {
        try await req.photoSorter.recluster.status(req.parameters.get("jobId")!)
    }
}
