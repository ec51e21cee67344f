import Vapor

/// GET /health, GET /metrics.
struct HealthController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("health", use: health)
        routes.get("metrics", use: metrics)
    }

    struct Health: Content {
        var status: String
        var database: String
        var persons: Int
        /// The face model of the stored faces (`arcface`, `dlib`), nil while there are none.
        var model: String?
        var inFlight: Int
        var photos: [String: Int]

        enum CodingKeys: String, CodingKey {
            case status, database, persons, model, photos
            case inFlight = "in_flight"
        }
    }

    func health(req: Request) async throws -> Health {
        let services = req.photoSorter
        let counts = try await services.reads.statusCounts()
        return Health(status: "ok", database: services.database.flavor.rawValue, persons: services.identity.personCount,
                      model: services.identity.model?.name,
                      inFlight: services.dispatcher.inFlightCount,
                      photos: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }))
    }

    /// Prometheus text exposition of every swift-metrics counter and timer.
    func metrics(req: Request) async throws -> Response {
        var headers = HTTPHeaders()
        headers.contentType = HTTPMediaType(type: "text", subType: "plain", parameters: ["version": "0.0.4"])
        return Response(status: .ok, headers: headers, body: .init(string: metricsRegistry.emitToString()))
    }
}
