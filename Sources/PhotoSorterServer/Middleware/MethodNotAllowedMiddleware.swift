import Vapor

/// A request for a path the service has, with a method it does not have there, gets 405 and `Allow` (the methods
/// registered for that path) instead of the router's 404 — or instead of a route of a less specific path that the
/// router falls back to (`GET /faces/move` would otherwise reach `GET /faces/{id}` with the id "move").
struct MethodNotAllowedMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let route = request.route, !route.path.contains(where: Self.isVariable) { return try await next.respond(to: request) }
        let segments = request.url.path.split(separator: "/").map(String.init)
        let matching = request.application.routes.all.filter { $0.method != .HEAD && Self.path($0.path, matches: segments) }
        // The router prefers a constant segment to a parameter: so does the path this request is for.
        guard let best = matching.map({ Self.specificity($0.path) }).max(by: { $0.lexicographicallyPrecedes($1) }) else {
            return try await next.respond(to: request)
        }
        if let route = request.route, Self.specificity(route.path) == best { return try await next.respond(to: request) }
        let allow = Set(matching.filter { Self.specificity($0.path) == best }.map(\.method.rawValue)).sorted().joined(separator: ", ")
        throw Abort(.methodNotAllowed, headers: ["Allow": allow], reason: "\(request.method.rawValue) is not allowed here; use \(allow)")
    }

    static func path(_ pattern: [PathComponent], matches segments: [String]) -> Bool {
        for (index, component) in pattern.enumerated() {
            switch component {
            case .catchall: return true
            case .anything, .parameter: if index >= segments.count { return false }
            case .constant(let constant): if index >= segments.count || segments[index] != constant { return false }
            }
        }
        return pattern.count == segments.count
    }

    private static func isVariable(_ component: PathComponent) -> Bool {
        if case .constant = component { false } else { true }
    }

    /// 1 for a constant segment, 0 for a variable one, segment by segment.
    private static func specificity(_ pattern: [PathComponent]) -> [Int] {
        pattern.map { isVariable($0) ? 0 : 1 }
    }
}
