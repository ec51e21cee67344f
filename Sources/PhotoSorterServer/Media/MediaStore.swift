import Foundation
import Logging
import PhotoSorterCore
import SQLKit

/// JPEGs the ML service made for the web page, as stored in `face_thumbnails` and `photo_previews`
/// (see `CreateMediaTables`). Writes run inside the caller's transaction.
enum MediaStore {
    private static let logger = Logger(label: "photo-sorter.media")
    /// Largest image accepted from the ML service; anything bigger is not a thumbnail or preview.
    static let maxThumbnailBytes = 256 * 1024
    static let maxPreviewBytes = 4 * 1024 * 1024

    /// A JPEG decoded from the wire, or nil (with a warning) when it is not one. An unusable image never
    /// costs the photo its faces: the page renders it lazily later.
    static func jpeg(base64: String?, limit: Int, what: @autoclosure () -> String) -> Data? {
        guard let base64 else { return nil }
        guard let data = Data(base64Encoded: base64), data.count <= limit, data.starts(with: [0xFF, 0xD8, 0xFF]) else {
            logger.warning("ignored an image that is not a JPEG of at most \(limit) bytes", metadata: ["image": "\(what())"])
            return nil
        }
        return data
    }

    /// Stores a callback's images. `replacingFaces`: the photo's faces were just (re)written, so thumbnails of
    /// boxes it no longer has go; during a reprocess the old faces still show, so their thumbnails stay until
    /// `removeOrphanThumbnails`.
    static func store(_ payload: CallbackPayload, replacingFaces: Bool, on tx: any SQLDatabase) async throws {
        if replacingFaces {
            try await tx.raw("DELETE FROM face_thumbnails WHERE photo_id = \(bind: payload.photoID)").run()
        }
        for (index, detection) in payload.detections.enumerated() {
            guard let jpeg = jpeg(base64: detection.thumbnail, limit: maxThumbnailBytes,
                                  what: "photo \(payload.photoID) face \(index)") else { continue }
            try await storeThumbnail(jpeg, photo: payload.photoID, box: detection.bbox, on: tx)
        }
        if let jpeg = jpeg(base64: payload.preview, limit: maxPreviewBytes, what: "photo \(payload.photoID) preview"),
           let width = payload.previewWidth, let height = payload.previewHeight, width > 0, height > 0 {
            try await storePreview(jpeg, width: width, height: height, photo: payload.photoID, on: tx)
        }
    }

    static func storeThumbnail(_ jpeg: Data, photo: Int64, box: BoundingBox, on db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO face_thumbnails (photo_id, bbox_x1, bbox_y1, bbox_x2, bbox_y2, jpeg)
            VALUES (\(bind: photo), \(bind: box.x1), \(bind: box.y1), \(bind: box.x2), \(bind: box.y2), \(bind: jpeg))
            ON CONFLICT (photo_id, bbox_x1, bbox_y1, bbox_x2, bbox_y2) DO UPDATE SET jpeg = excluded.jpeg
            """).run()
    }

    static func storePreview(_ jpeg: Data, width: Int, height: Int, photo: Int64, on db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO photo_previews (photo_id, width, height, jpeg) VALUES (\(bind: photo), \(bind: width), \(bind: height), \(bind: jpeg))
            ON CONFLICT (photo_id) DO UPDATE SET width = excluded.width, height = excluded.height, jpeg = excluded.jpeg
            """).run()
    }

    /// A changed file: its old images show what is no longer there.
    static func removeImages(ofPhoto photoID: Int64, on tx: any SQLDatabase) async throws {
        try await tx.raw("DELETE FROM face_thumbnails WHERE photo_id = \(bind: photoID)").run()
        try await tx.raw("DELETE FROM photo_previews WHERE photo_id = \(bind: photoID)").run()
    }

    /// After a reprocess: drops thumbnails of boxes no face has any more.
    static func removeOrphanThumbnails(on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            DELETE FROM face_thumbnails WHERE NOT EXISTS (
                SELECT 1 FROM embeddings e WHERE e.photo_id = face_thumbnails.photo_id AND e.bbox_x1 = face_thumbnails.bbox_x1
                    AND e.bbox_y1 = face_thumbnails.bbox_y1 AND e.bbox_x2 = face_thumbnails.bbox_x2 AND e.bbox_y2 = face_thumbnails.bbox_y2)
            """).run()
    }

    /// The stored thumbnail of face `faceID`; `.noFace` when there is no such face.
    static func thumbnail(ofFace faceID: Int64, on db: any SQLDatabase) async throws -> Lookup {
        guard let row = try await db.raw("""
            SELECT e.photo_id, t.jpeg FROM embeddings e LEFT JOIN face_thumbnails t ON t.photo_id = e.photo_id
                AND t.bbox_x1 = e.bbox_x1 AND t.bbox_y1 = e.bbox_y1 AND t.bbox_x2 = e.bbox_x2 AND t.bbox_y2 = e.bbox_y2
            WHERE e.id = \(bind: faceID)
            """).first() else { return .noSubject }
        if let jpeg = try row.decode(column: "jpeg", as: Data?.self) { return .found(jpeg) }
        return .missing(photo: try row.decode(column: "photo_id", as: Int64.self))
    }

    /// The stored preview of photo `photoID`.
    static func preview(ofPhoto photoID: Int64, on db: any SQLDatabase) async throws -> Lookup {
        guard let row = try await db.raw("""
            SELECT p.id, v.jpeg FROM photos p LEFT JOIN photo_previews v ON v.photo_id = p.id WHERE p.id = \(bind: photoID)
            """).first() else { return .noSubject }
        if let jpeg = try row.decode(column: "jpeg", as: Data?.self) { return .found(jpeg) }
        return .missing(photo: photoID)
    }

    /// The face that pictures a person: a confirmed one first, then the most confident detection.
    static let coverFaceSubquery: SQLQueryString = """
        (SELECT c.id FROM embeddings c WHERE c.person_id = p.id ORDER BY c.confirmed DESC, c.confidence DESC, c.id LIMIT 1)
        """

    /// The person's cover face in one query: `.some(nil)` for a person without faces, nil for no such person.
    static func coverFace(of personID: Int64, on db: any SQLDatabase) async throws -> Int64?? {
        guard let row = try await db.raw("SELECT \(coverFaceSubquery) AS face_id FROM persons p WHERE p.id = \(bind: personID)").first() else {
            return nil
        }
        return .some(try row.decode(column: "face_id", as: Int64?.self))
    }

    /// Path, quarter turns and face boxes of a photo, what the ML service needs to render its images again.
    static func renderSource(ofPhoto photoID: Int64, on db: any SQLDatabase) async throws
        -> (path: String, quarterTurns: Int, boxes: [BoundingBox])? {
        guard let photo = try await db.raw("SELECT path, quarter_turns FROM photos WHERE id = \(bind: photoID)").first() else { return nil }
        let boxes = try await db.raw("""
            SELECT bbox_x1, bbox_y1, bbox_x2, bbox_y2 FROM embeddings WHERE photo_id = \(bind: photoID) ORDER BY face_index, id
            """).all().map { try BoundingBox(row: $0) }
        return (try photo.decode(column: "path", as: String.self),
                try photo.decode(column: "quarter_turns", as: Int?.self) ?? 0, boxes)
    }

    enum Lookup: Equatable {
        case found(Data)
        /// The subject exists but its image was never made (a database from before thumbnails).
        case missing(photo: Int64)
        case noSubject
    }
}
