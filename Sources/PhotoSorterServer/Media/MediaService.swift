import Foundation
import Logging
import NIOConcurrencyHelpers
import PhotoSorterCore

/// Face thumbnails, person covers and photo previews for the web page, read from the database. A photo
/// analysed before the ML service sent images gets them on first request: one `POST /render` per photo
/// (concurrent requests for the same photo share it), stored for every later request.
public final class MediaService: Sendable {
    private let database: PhotoSorterDatabase
    private let ml: MLClient
    private let logger: Logger
    private let renders = NIOLockedValueBox([Int64: Task<Void, any Error>]())

    init(database: PhotoSorterDatabase, ml: MLClient, logger: Logger) {
        self.database = database
        self.ml = ml
        self.logger = logger
    }

    public func faceThumbnail(_ faceID: Int64) async throws -> Data {
        switch try await MediaStore.thumbnail(ofFace: faceID, on: database.sql) {
        case .found(let jpeg): return jpeg
        case .noSubject: throw PhotoSorterError.faceNotFound(faceID)
        case .missing(let photo):
            try await render(photo)
            guard case .found(let jpeg) = try await MediaStore.thumbnail(ofFace: faceID, on: database.sql) else {
                throw PhotoSorterError.imageUnavailable("the ML service made no thumbnail for face \(faceID)")
            }
            return jpeg
        }
    }

    /// The thumbnail of the person's cover face (`MediaStore.coverFaceSubquery`).
    public func personThumbnail(_ personID: Int64) async throws -> Data {
        guard let cover = try await MediaStore.coverFace(of: personID, on: database.sql) else {
            throw PhotoSorterError.personNotFound(personID)
        }
        guard let face = cover else { throw PhotoSorterError.imageUnavailable("person \(personID) has no faces") }
        return try await faceThumbnail(face)
    }

    public func photoPreview(_ photoID: Int64) async throws -> Data {
        switch try await MediaStore.preview(ofPhoto: photoID, on: database.sql) {
        case .found(let jpeg): return jpeg
        case .noSubject: throw PhotoSorterError.photoNotFound(photoID)
        case .missing:
            try await render(photoID)
            guard case .found(let jpeg) = try await MediaStore.preview(ofPhoto: photoID, on: database.sql) else {
                throw PhotoSorterError.imageUnavailable("the ML service made no preview for photo \(photoID)")
            }
            return jpeg
        }
    }

    /// Renders a photo's images once, however many requests wait for them.
    private func render(_ photoID: Int64) async throws {
        let task = renders.withLockedValue { running in
            if let task = running[photoID] { return task }
            let task = Task { try await self.renderNow(photoID) }
            running[photoID] = task
            return task
        }
        defer { renders.withLockedValue { running in if running[photoID] == task { running[photoID] = nil } } }
        try await task.value
    }

    private func renderNow(_ photoID: Int64) async throws {
        guard let source = try await MediaStore.renderSource(ofPhoto: photoID, on: database.sql) else {
            throw PhotoSorterError.photoNotFound(photoID)
        }
        let started = Date()
        let images = try await ml.render(path: source.path, quarterTurns: source.quarterTurns, boxes: source.boxes)
        try await database.transaction { tx in
            for (index, (box, thumbnail)) in zip(source.boxes, images.thumbnails).enumerated() {
                if let jpeg = MediaStore.jpeg(base64: thumbnail, limit: MediaStore.maxThumbnailBytes,
                                              what: "photo \(photoID) face \(index)") {
                    try await MediaStore.storeThumbnail(jpeg, photo: photoID, box: box, on: tx)
                }
            }
            if let jpeg = MediaStore.jpeg(base64: images.preview, limit: MediaStore.maxPreviewBytes,
                                          what: "photo \(photoID) preview"),
               images.previewWidth > 0, images.previewHeight > 0 {
                try await MediaStore.storePreview(jpeg, width: images.previewWidth, height: images.previewHeight, photo: photoID, on: tx)
            }
        }
        logger.info("rendered missing images", metadata: ["photo_id": "\(photoID)", "faces": "\(source.boxes.count)",
                                                          "ms": "\(Int(Date().timeIntervalSince(started) * 1000))"])
    }
}
