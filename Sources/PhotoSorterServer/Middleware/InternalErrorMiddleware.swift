import Vapor

/// Keeps internals out of error bodies in every environment: an error that is not an `AbortError` (a database
/// failure with its SQL, a file-system error with its paths) is logged in full and answered with a generic 500.
/// Vapor's own error middleware does this only in production; tests and `swift run` would show the detail.
struct InternalErrorMiddleware: AsyncMiddleware {
    static let reason = "internal error; the service log has the details"

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            return try await next.respond(to: request)
        } catch let error as any AbortError {
            throw error
        } catch {
            request.logger.error("request failed", metadata: [
                "method": "\(request.method)", "path": "\(request.url.path)", "error": "\(String(reflecting: error))"])
            throw Abort(.internalServerError, reason: Self.reason)
        }
    }
}
