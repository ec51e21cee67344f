import Foundation
import Vapor

/// GET /thumbnails/face/{id}.jpg, /thumbnails/person/{id}.jpg (the person's cover face),
/// /thumbnails/photo/{id}.jpg (the preview): JPEGs from the database, with ETag revalidation.
struct MediaController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let thumbnails = routes.grouped("thumbnails")
        thumbnails.get("face", ":file", use: face)
        thumbnails.get("person", ":file", use: person)
        thumbnails.get("photo", ":file", use: photo)
    }

    func face(req: Request) async throws -> Response {
        req.jpeg(try await req.photoSorter.media.faceThumbnail(try req.imageID()), maxAgeSeconds: 3600)
    }

    /// Short cache: the cover changes when faces move.
    func person(req: Request) async throws -> Response {
        req.jpeg(try await req.photoSorter.media.personThumbnail(try req.imageID()), maxAgeSeconds: 60)
    }

    func photo(req: Request) async throws -> Response {
        req.jpeg(try await req.photoSorter.media.photoPreview(try req.imageID()), maxAgeSeconds: 3600)
    }
}

extension Request {
    /// The id of a `{id}.jpg` path segment (422 otherwise).
    func imageID() throws -> Int64 {
        let file = parameters.get("file") ?? ""
        guard file.hasSuffix(".jpg"), let id = Int64(file.dropLast(4)), id > 0 else {
            throw PhotoSorterError.invalidRequest("expected {id}.jpg, got \(file)")
        }
        return id
    }

    /// A JPEG answer with a content ETag: 304 when the browser already holds it. Images are private to this
    /// library, so caches in between must not keep them.
    func jpeg(_ data: Data, maxAgeSeconds: Int) -> Response {
        let etag = "\"" + SHA256.hash(data: data).hex.prefix(24) + "\""
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .eTag, value: etag)
        headers.replaceOrAdd(name: .cacheControl, value: "private, max-age=\(maxAgeSeconds)")
        if self.headers.first(name: .ifNoneMatch) == etag {
            return Response(status: .notModified, headers: headers)
        }
        headers.contentType = .jpeg
        return Response(status: .ok, headers: headers, body: .init(data: data))
    }
}
