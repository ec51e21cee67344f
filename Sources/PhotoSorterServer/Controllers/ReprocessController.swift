import PhotoSorterCore
import Vapor

/// POST /reprocess `{model?}` starts (or resumes) re-analysis of every photo (shared secret when one is set);
/// GET /reprocess/{jobId} follows it.
struct ReprocessController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("reprocess", use: start)
        routes.get("reprocess", ":jobId", use: status)
    }

    struct StartRequest: Content {
        /// `arcface` or `dlib`; default: the configured model, else the database's, else the default model.
        var model: String?
    }

    func start(req: Request) async throws -> Response {
        try req.requireSecret()
        let body = req.body.data == nil ? StartRequest() : try req.content.decode(StartRequest.self)
        let services = req.photoSorter
        let model: FaceModel
        if let name = body.model {
            guard let named = FaceModel.named(name) else {
                throw PhotoSorterError.invalidRequest("unknown face model \"\(name)\"; choose one of "
                    + FaceModel.all.map(\.name).joined(separator: ", "))
            }
            model = named
        } else {
            model = services.config.requestedModel ?? services.identity.model ?? .default
        }
        return try await services.reprocess.start(model: model).encodeResponse(status: .accepted, for: req)
    }

    func status(req: Request) async throws -> ReprocessStatus {
        try await req.photoSorter.reprocess.status(req.parameters.get("jobId")!)
    }
}
