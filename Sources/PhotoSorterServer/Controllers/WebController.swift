import Foundation
import Vapor

/// The people web page: GET / (the page), GET /ui/{file} (its scripts and styles: every file of the `Web` resource
/// folder), GET /ui/settings (what the page needs to know about this service). A single page with hash routes, its
/// script plain ES modules; no build step, nothing loaded from elsewhere.
struct WebController: RouteCollection {
    let assets: WebAssets

    func boot(routes: any RoutesBuilder) throws {
        routes.get(use: index)
        routes.get("ui", "settings", use: settings)
        routes.get("ui", ":file", use: asset)
    }

    func index(req: Request) async throws -> Response {
        try assets.response(for: "index.html", to: req)
    }

    func asset(req: Request) async throws -> Response {
        try assets.response(for: req.parameters.get("file") ?? "", to: req)
    }

    func settings(req: Request) async throws -> WebSettings {
        let services = req.photoSorter
        return WebSettings(allowedRoots: services.config.allowedRoots, model: services.identity.model?.name,
                           tokenRequired: services.config.apiToken != nil)
    }
}

/// GET /ui/settings.
struct WebSettings: Content {
    /// Folders the Jobs page may ingest; empty: any folder (only while bound to loopback).
    var allowedRoots: [String]
    var model: String?
    var tokenRequired: Bool

    enum CodingKeys: String, CodingKey {
        case model
        case allowedRoots = "allowed_roots"
        case tokenRequired = "token_required"
    }
}

/// The page's files, read once from the package's resources: every file of `Sources/PhotoSorterServer/Web`, so that
/// a new module needs no change here.
struct WebAssets: Sendable {
    struct Asset: Sendable {
        var data: Data
        var contentType: HTTPMediaType
        var etag: String
    }

    private let files: [String: Asset]

    /// The page may only load from this service; inline script is refused.
    static let contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        + "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// The kinds of file the folder may hold, by extension (module scripts must come as JavaScript).
    static let contentTypes: [String: HTTPMediaType] = [
        "html": .html, "css": .css, "js": HTTPMediaType(type: "text", subType: "javascript", parameters: ["charset": "utf-8"]),
    ]

    static func load() throws -> WebAssets {
        guard let folder = Bundle.module.url(forResource: "Web", withExtension: nil) else {
            throw WebAssetsError(message: "the web page folder Web is missing from the package resources")
        }
        var files: [String: Asset] = [:]
        let urls = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: [.isRegularFileKey],
                                                               options: [.skipsHiddenFiles])
        for url in urls {
            guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue } // a folder
            let name = url.lastPathComponent
            guard let type = contentTypes[url.pathExtension.lowercased()] else {
                throw WebAssetsError(message: "web page file \(name) has no known content type (html, css, js)")
            }
            let data = try Data(contentsOf: url)
            files[name] = Asset(data: data, contentType: type, etag: "\"" + SHA256.hash(data: data).hex.prefix(24) + "\"")
        }
        guard files["index.html"] != nil else {
            throw WebAssetsError(message: "web page file index.html is missing from the package resources")
        }
        return WebAssets(files: files)
    }

    func response(for name: String, to req: Request) throws -> Response {
        guard let asset = files[name] else { throw Abort(.notFound, reason: "no file \(name)") }
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .eTag, value: asset.etag)
        // Revalidated every time (a 304 costs nothing), so a new build is never hidden behind a cached page.
        headers.replaceOrAdd(name: .cacheControl, value: "no-cache")
        headers.replaceOrAdd(name: .contentSecurityPolicy, value: Self.contentSecurityPolicy)
        headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        if req.headers.first(name: .ifNoneMatch) == asset.etag {
            return Response(status: .notModified, headers: headers)
        }
        headers.contentType = asset.contentType
        return Response(status: .ok, headers: headers, body: .init(data: asset.data))
    }
}

struct WebAssetsError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
