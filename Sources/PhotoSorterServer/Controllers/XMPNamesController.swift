import Vapor

/// GET /xmp/names: the names read from XMP face regions — how many are applied, pending, or in conflict with a
/// user's correction, and the conflicts (`limit`, default 100, at most 10,000).
struct XMPNamesController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("xmp", "names", use: names)
    }

    func names(req: Request) async throws -> XMPNamesSummary {
        let limit = try req.optionalQuery(Int.self, "limit") ?? 100
        guard (0...10_000).contains(limit) else { throw PhotoSorterError.invalidQuery("limit must be 0...10000, got \(limit)") }
        return try await req.photoSorter.xmpNames.summary(conflictLimit: limit)
    }
}
