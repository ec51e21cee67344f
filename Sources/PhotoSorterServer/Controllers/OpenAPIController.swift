import Foundation
import Vapor

/// GET /openapi.json: the service's OpenAPI 3.1 document (`Sources/PhotoSorterServer/OpenAPI/openapi.json`), served
/// as stored. `OpenAPIContractTests` keeps it and the registered routes in step.
struct OpenAPIController: RouteCollection {
    let document: Data

    /// Reads the document from the package's resources; a missing file stops the service at start-up.
    static func load() throws -> OpenAPIController {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json", subdirectory: "OpenAPI") else {
            throw OpenAPIDocumentMissing()
        }
        return OpenAPIController(document: try Data(contentsOf: url))
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get("openapi.json", use: serve)
    }

    func serve(req: Request) async throws -> Response {
        var headers = HTTPHeaders()
        headers.contentType = .json
        return Response(status: .ok, headers: headers, body: .init(data: document))
    }
}

struct OpenAPIDocumentMissing: Error, CustomStringConvertible {
    var description: String { "OpenAPI/openapi.json is missing from the package resources" }
}
