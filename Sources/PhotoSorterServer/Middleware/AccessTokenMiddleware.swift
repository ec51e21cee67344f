import Foundation
import Vapor

/// With `PHOTO_SORTER_API_TOKEN` set (required when the service is reachable from other machines), every page
/// and API call needs it: `Authorization: Bearer <token>`, `X-Photo-Sorter-Token`, or the cookie that opening
/// `/?token=<token>` once sets (HttpOnly, SameSite=Strict; the redirect drops the token from the address bar).
/// The ML service proves itself with the shared secret instead. `/health` stays open for probes.
struct AccessTokenMiddleware: AsyncMiddleware {
    static let cookieName = "photo_sorter_token"
    let token: String
    let sharedSecret: String?

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if request.url.path == "/health" { return try await next.respond(to: request) }
        if request.method == .GET, request.url.path == "/", let given = request.query[String.self, at: "token"] {
            guard Self.same(given, token) else { return Self.tokenPage(status: .unauthorized) }
            let response = request.redirect(to: "/")
            response.cookies[Self.cookieName] = HTTPCookies.Value(string: token, path: "/", isHTTPOnly: true, sameSite: .strict)
            return response
        }
        switch credential(in: request) {
        case .token:
            request.storage[PresentedToken.self] = true
            return try await next.respond(to: request)
        case .sharedSecret:
            return try await next.respond(to: request)
        case nil:
            break
        }
        if request.method == .GET, request.url.path == "/" { return Self.tokenPage(status: .unauthorized) }
        throw PhotoSorterError.tokenRequired
    }

    /// Marks a request that came with the API token: it may write where the shared secret is asked for.
    struct PresentedToken: StorageKey { typealias Value = Bool }

    private enum Credential { case token, sharedSecret }

    private func credential(in request: Request) -> Credential? {
        let offered = [request.headers.bearerAuthorization?.token, request.headers.first(name: "X-Photo-Sorter-Token"),
                       request.cookies[Self.cookieName]?.string]
        if offered.contains(where: { $0.map { Self.same($0, token) } == true }) { return .token }
        if let sharedSecret, let given = request.headers.first(name: "X-Photo-Sorter-Secret"), Self.same(given, sharedSecret) {
            return .sharedSecret
        }
        return nil
    }

    /// Compares in time independent of where the strings differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// What a browser shows without the token: how to get in, not a JSON error.
    private static func tokenPage(status: HTTPResponseStatus) -> Response {
        let html = """
            <!doctype html><meta charset="utf-8"><title>photo-sorter</title>
            <body style="font-family:system-ui;margin:4rem auto;max-width:36rem">
            <h1>photo-sorter needs its access token</h1>
            <p>This service is reachable from other machines, so every page needs the token it was started with
            (<code>PHOTO_SORTER_API_TOKEN</code>). Open this address once as <code>/?token=…</code>.</p></body>
            """
        var headers = HTTPHeaders()
        headers.contentType = .html
        return Response(status: status, headers: headers, body: .init(string: html))
    }
}
