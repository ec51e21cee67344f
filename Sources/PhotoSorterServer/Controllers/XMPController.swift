import Vapor

/// POST /xmp/write `{dry_run?, person_id?, sidecar_name?}` starts writing face names into the photos' XMP sidecars
/// (shared secret when one is set); GET /xmp/write/{jobId} follows it.
struct XMPController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("xmp", "write", use: start)
        routes.get("xmp", "write", ":jobId", use: status)
    }

    func start(req: Request) async throws -> Response {
        try req.requireSecret()
        let body = req.body.data == nil ? XMPWriteRequest() : try req.content.decode(XMPWriteRequest.self)
        return try await req.photoSorter.xmp.start(body).encodeResponse(status: .accepted, for: req)
    }

    func status(req: Request) async throws -> XMPWriteStatus {
        try req.photoSorter.xmp.status(req.parameters.get("jobId")!)
    }
}
