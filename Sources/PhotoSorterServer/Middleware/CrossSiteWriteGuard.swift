import Vapor

/// Keeps other web sites from writing through a visitor's browser (CSRF), whether or not a token is set: a page
/// on another origin can make the browser POST to 127.0.0.1. Every write (any method but GET/HEAD/OPTIONS)
/// - is refused when the browser says it comes from another site (`Sec-Fetch-Site`) or another origin (`Origin`);
/// - from a browser at all needs `X-Photo-Sorter-Request`, which no form can send and which a cross-origin script
///   can only send after a CORS preflight this service never approves;
/// - with a body needs `Content-Type: application/json` (a form's urlencoded or multipart body is refused).
/// Clients that are not browsers (the ML service, scripts, the CLI) send neither `Origin` nor `Sec-Fetch-*`.
struct CrossSiteWriteGuard: AsyncMiddleware {
    static let requestHeader = "X-Photo-Sorter-Request"

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if [.GET, .HEAD, .OPTIONS].contains(request.method) { return try await next.respond(to: request) }
        let headers = request.headers
        if let site = headers.first(name: "Sec-Fetch-Site"), site != "same-origin", site != "none" {
            throw PhotoSorterError.crossSiteWrite("it comes from another site (Sec-Fetch-Site: \(site))")
        }
        let origin = headers.first(name: .origin)
        if let origin {
            let host = headers.first(name: .host) ?? ""
            guard !host.isEmpty, origin == "http://\(host)" || origin == "https://\(host)" else {
                throw PhotoSorterError.crossSiteWrite("Origin \(origin) is not this service")
            }
        }
        if origin != nil || headers.first(name: "Sec-Fetch-Mode") != nil, headers.first(name: Self.requestHeader) == nil {
            throw PhotoSorterError.crossSiteWrite("a write from a browser needs the \(Self.requestHeader) header")
        }
        let hasBody = (headers.first(name: .contentLength).flatMap(Int.init) ?? 0) > 0 || headers.first(name: .transferEncoding) != nil
        if hasBody, request.content.contentType.map({ $0.type == "application" && $0.subType == "json" }) != true {
            throw PhotoSorterError.unsupportedMediaType("request bodies must be JSON (Content-Type: application/json)")
        }
        return try await next.respond(to: request)
    }
}
