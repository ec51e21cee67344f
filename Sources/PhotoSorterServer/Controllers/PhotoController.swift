import Foundation
import PhotoSorterCore
import Vapor

/// GET /photo/{id}, GET /photos, GET /photos/people, PUT /photo/update-status, POST /classify-photo.
struct PhotoController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("photo", ":id", use: photo)
        routes.get("photos", use: photos)
        routes.get("photos", "people", use: people)
        routes.put("photo", "update-status", use: updateStatus)
        routes.post("classify-photo", use: classify)
    }

    func photo(req: Request) async throws -> PhotoView {
        try await req.photoSorter.reads.photo(try req.int64Parameter("id"))
    }

    /// Photos by people, date and order (`Request.photoQuery`), keyset-paged; `status=` narrows a query without persons.
    func photos(req: Request) async throws -> PhotoPage {
        let status = try req.optionalQuery(String.self, "status").map { raw -> PhotoStatus in
            guard let status = PhotoStatus(rawValue: raw) else { throw PhotoSorterError.invalidRequest("unknown status \(raw)") }
            return status
        }
        return try await req.photoSorter.people.findPhotos(try req.photoQuery(defaultLimit: 500, clampLimit: 1...PhotoQuery.maxLimit),
                                                           status: status)
    }

    /// Who is in a set of photos: `ids=1,2,3` (at most 10,000), or `folder=` (every photo below it, inside the
    /// allowed roots).
    func people(req: Request) async throws -> PeopleInPhotos {
        let ids = try req.idListQuery("ids", of: "photo")
        let folder = try req.optionalQuery(String.self, "folder")
        switch (ids, folder) {
        case (let ids?, nil):
            return try await req.photoSorter.people.people(inPhotos: ids)
        case (nil, let folder?):
            return try await req.photoSorter.people(inFolder: folder)
        default:
            throw PhotoSorterError.invalidQuery("give ids= or folder=, one of them")
        }
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
            guard (0...3).contains(payload.quarterTurns) else {
                throw PhotoSorterError.mlServiceRejected(status: 200, reason: "quarter_turns must be 0, 1, 2 or 3, got \(payload.quarterTurns)")
            }
            payload.detections = analysis.detections
            payload.taken = analysis.taken
            payload.meta = analysis.meta
        case 400..<500:
            payload.status = .failed
            payload.error = String(decoding: result.body.prefix(2000), as: UTF8.self)
        default:
            throw PhotoSorterError.mlServiceRejected(status: result.status, reason: String(decoding: result.body.prefix(500), as: UTF8.self))
        }
        let key = "classify-p\(photoID)-" + SHA256.hash(data: result.body).hex
        _ = try await services.identity.commit(payload, key: key)
        // The answer shows the faces where their XMP names put them.
        if payload.detections.contains(where: { $0.xmpName != nil }) { await services.xmpNames.drain() }
        return try await services.reads.photo(photoID)
    }

    /// Body of the ML service's /embeddings/from-image answer.
    private struct SyncAnalysis: Decodable {
        var width: Int?
        var height: Int?
        var quarterTurns: Int?
        var detections: [CallbackPayload.Detection]
        var meta: CallbackPayload.Meta?
        var taken: TakenDate?

        enum CodingKeys: String, CodingKey {
            case width, height, detections, meta, taken
            case quarterTurns = "quarter_turns"
        }
    }
}
