import Foundation
import PhotoSorterCore
import Vapor

/// GET /photo/{id}, GET /photos, PUT /photo/update-status, POST /classify-photo.
struct PhotoController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("photo", ":id", use: photo)
        routes.get("photos", use: photos)
        routes.put("photo", "update-status", use: updateStatus)
        routes.post("classify-photo", use: classify)
    }

    func photo(req: Request) async throws -> PhotoView {
        try await req.photoSorter.reads.photo(try req.int64Parameter("id"))
    }

    /// Keyset pagination: `?after_id=&limit=&status=`.
    func photos(req: Request) async throws -> PhotoPage {
        let status = try req.optionalQuery(String.self, "status").map { raw -> PhotoStatus in
            guard let status = PhotoStatus(rawValue: raw) else { throw PhotoSorterError.invalidRequest("unknown status \(raw)") }
            return status
        }
        let limit = min(max(try req.optionalQuery(Int.self, "limit") ?? 500, 1), 5000)
        return try await req.photoSorter.reads.photos(afterID: try req.optionalQuery(Int64.self, "after_id") ?? 0, limit: limit, status: status)
    }

    func updateStatus(req: Request) async throws -> PhotoView {
        let body = try req.content.decode(StatusUpdate.self)
        guard try await req.photoSorter.statuses.set(body.photoID, to: body.status, error: body.error) else {
            throw PhotoSorterError.photoNotFound(body.photoID)
        }
        if body.status == .ready { req.photoSorter.workQueued() }
        if body.status != .processing { req.photoSorter.dispatcher.finished(body.photoID) }
        return try await req.photoSorter.reads.photo(body.photoID)
    }

    /// Synchronous analysis of one photo through the same persistence path as the callback.
    func classify(req: Request) async throws -> PhotoView {
        let body = try req.content.decode(ClassifyRequest.self)
        let services = req.photoSorter
        let photoID: Int64
        if let id = body.photoID {
            photoID = id
        } else if let path = body.path {
            photoID = try await services.ingest.register(path: path)
        } else {
            throw PhotoSorterError.invalidRequest("give photo_id or path")
        }
        let current = try await services.reads.photo(photoID)
        if current.status == .processed { return current }
        let result = try await services.ml.analyse(path: current.path)
        var payload = CallbackPayload(photoID: photoID, path: current.path, callbackID: nil, status: .processed)
        switch result.status {
        case 200:
            let analysis: SyncAnalysis
            do { analysis = try JSONDecoder().decode(SyncAnalysis.self, from: result.body) } catch {
                throw PhotoSorterError.mlServiceRejected(status: 200, reason: "unreadable analysis: \(error)")
            }
            payload.width = analysis.width
            payload.height = analysis.height
            payload.quarterTurns = analysis.quarterTurns ?? 0
            payload.detections = analysis.detections
            payload.meta = analysis.meta
        case 400..<500:
            payload.status = .failed
            payload.error = String(decoding: result.body.prefix(2000), as: UTF8.self)
        default:
            throw PhotoSorterError.mlServiceRejected(status: result.status, reason: String(decoding: result.body.prefix(500), as: UTF8.self))
        }
        let key = "classify-p\(photoID)-" + SHA256.hash(data: result.body).hex
        _ = try await services.identity.commit(payload, key: key)
        return try await services.reads.photo(photoID)
    }

    /// Body of the ML service's /embeddings/from-image answer.
    private struct SyncAnalysis: Decodable {
        var width: Int?
        var height: Int?
        var quarterTurns: Int?
        var detections: [CallbackPayload.Detection]
        var meta: CallbackPayload.Meta?

        enum CodingKeys: String, CodingKey {
            case width, height, detections, meta
            case quarterTurns = "quarter_turns"
        }
    }
}

extension Request {
    /// The query value `name` as a `T`, nil when the query does not name it. A value that is not a `T` (or a name
    /// given twice) is a 400, never silently the default.
    func optionalQuery<T: Decodable>(_ type: T.Type, _ name: String) throws -> T? {
        let occurrences = (url.query ?? "").split(separator: "&").filter { pair in
            let key = String(pair.prefix { $0 != "=" }).removingPercentEncoding ?? ""
            return key == name || key.hasPrefix(name + "[")
        }.count
        if occurrences == 0 { return nil }
        guard occurrences == 1, let value = query[T.self, at: name] else {
            throw PhotoSorterError.invalidQuery("query parameter \(name) must be a single \(T.self) value")
        }
        return value
    }

    /// A path parameter that must be a positive integer id (422 otherwise).
    func int64Parameter(_ name: String) throws -> Int64 {
        guard let raw = parameters.get(name), let value = Int64(raw), value > 0 else {
            throw PhotoSorterError.invalidRequest("\(name) must be a positive integer, got \(parameters.get(name) ?? "nothing")")
        }
        return value
    }
}
