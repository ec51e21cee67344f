import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// The images the web page shows (face thumbnails, person covers, photo previews): served from what the results
/// stored, rendered once per photo for a database from before thumbnails, and replaced by a reprocess.
class ThumbnailTests: DatabaseTestCase {
    /// Each face's thumbnail, each person's cover and each photo's preview come from what the callback stored,
    /// as JPEGs with an ETag the browser can revalidate (304); the ML service is never asked to render.
    func testImagesFromCallbacksAreServedFromStorage() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let page = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self)
            XCTAssertFalse(page.persons.isEmpty)
            for photo in try await service.photos() where photo.status == .processed {
                let detailed = try await service.photo(photo.photoID)
                let file = URL(fileURLWithPath: photo.path).lastPathComponent
                for (index, detection) in (detailed.detections ?? []).enumerated() {
                    let reply = try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")
                    XCTAssertEqual(reply.status, .ok)
                    XCTAssertEqual(reply.headers.first(name: .contentType), "image/jpeg")
                    let shown = label(of: reply.body) ?? ""
                    XCTAssertTrue(shown.hasPrefix("callback ") && shown.hasSuffix("\(file) face \(index)"), shown)
                }
                let preview = try await service.request(.GET, "/thumbnails/photo/\(photo.photoID).jpg")
                XCTAssertEqual(preview.status, .ok)
                XCTAssertTrue(label(of: preview.body)?.hasSuffix("\(file) preview") == true, label(of: preview.body) ?? "no label")
            }
            for person in page.persons {
                let cover = try XCTUnwrap(person.coverFaceID, "person \(person.personID) has no cover face")
                let face = try await service.request(.GET, "/faces/\(cover)").decode(FaceView.self)
                XCTAssertEqual(face.personID, person.personID)
                let thumbnail = try await service.request(.GET, "/thumbnails/person/\(person.personID).jpg")
                let coverThumbnail = try await service.request(.GET, "/thumbnails/face/\(cover).jpg")
                XCTAssertEqual(thumbnail.body, coverThumbnail.body)
            }
            let first = try await service.request(.GET, "/thumbnails/person/\(page.persons[0].personID).jpg")
            let etag = try XCTUnwrap(first.headers.first(name: .eTag))
            XCTAssertTrue(first.headers.first(name: .cacheControl)?.hasPrefix("private") == true)
            let revalidated = try await service.request(.GET, "/thumbnails/person/\(page.persons[0].personID).jpg",
                                                        headers: [("If-None-Match", etag)])
            XCTAssertEqual(revalidated.status, .notModified)
            XCTAssertTrue(revalidated.body.isEmpty)
            XCTAssertEqual(service.ml.renderedPaths, [])

            let missingFace = try await service.request(.GET, "/thumbnails/face/999999.jpg")
            XCTAssertEqual(missingFace.status, .notFound, missingFace.reason)
            let badName = try await service.request(.GET, "/thumbnails/face/abc.png")
            XCTAssertEqual(badName.status, .unprocessableEntity)
        }
    }

    /// A database from before thumbnails (the ML service sent none) gets them on first request: one render per
    /// photo however many of its faces are asked for at once, stored, and never rendered again.
    func testOlderDatabasesGetImagesLazilyOncePerPhoto() async throws {
        var behaviour = FakeMLService.Behaviour()
        behaviour.sendsImages = false
        try await TestService.run(flavor, ml: behaviour) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let photos = try await service.photos().filter { $0.status == .processed }
            let several = try await asyncFirst(photos) { try await service.photo($0.photoID).detections?.count ?? 0 >= 2 }
            let photo = try XCTUnwrap(several, "the fixtures have a photo with several faces")
            let detections = try await service.photo(photo.photoID).detections ?? []
            let replies = try await withThrowingTaskGroup(of: (Int, TestService.Reply).self) { group in
                for (index, detection) in detections.enumerated() {
                    group.addTask { (index, try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")) }
                }
                group.addTask { (-1, try await service.request(.GET, "/thumbnails/photo/\(photo.photoID).jpg")) }
                return try await group.reduce(into: [Int: TestService.Reply]()) { $0[$1.0] = $1.1 }
            }
            XCTAssertEqual(service.ml.renderedPaths, [photo.path], "one render for the photo")
            for (index, detection) in detections.enumerated() {
                XCTAssertEqual(replies[index]?.status, .ok)
                let box = [detection.bbox.x1, detection.bbox.y1, detection.bbox.x2, detection.bbox.y2]
                XCTAssertEqual(replies[index].flatMap { label(of: $0.body) }, "render \(photo.path) box \(box)")
            }
            XCTAssertEqual(replies[-1].flatMap { label(of: $0.body) }, "render preview \(photo.path)")
            for detection in detections {
                _ = try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")
            }
            XCTAssertEqual(service.ml.renderedPaths.count, 1, "stored images are not rendered again")
        }
    }

    /// A reprocess stores the images its results bring (a library from before thumbnails gets them all) and drops
    /// those of boxes no face has any more.
    func testReprocessStoresNewImagesAndDropsOrphans() async throws {
        var behaviour = FakeMLService.Behaviour()
        behaviour.sendsImages = false
        try await TestService.run(flavor, ml: behaviour) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let withFaces = try await service.photos().first { $0.status == .processed && $0.noFaces == false }
            let photo = try XCTUnwrap(withFaces)
            try await MediaStore.storeThumbnail(FakeMLService.labelledJPEG("orphan"), photo: photo.photoID,
                                                box: BoundingBox(x1: 1, y1: 1, x2: 2, y2: 2), on: service.services.database.sql)
            service.ml.sendImages(true)
            let status = try await service.reprocess(body: "{}")
            XCTAssertEqual(status.status, "COMPLETED")
            for photo in try await service.photos() where photo.status == .processed {
                for detection in try await service.photo(photo.photoID).detections ?? [] {
                    let reply = try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")
                    XCTAssertTrue(label(of: reply.body)?.hasPrefix("callback ") == true, "face \(detection.embeddingID): \(reply.status)")
                }
            }
            XCTAssertEqual(service.ml.renderedPaths, [], "every image came with the reprocess's results")
            let orphans = try await service.services.database.sql.raw("""
                SELECT COUNT(*) AS n FROM face_thumbnails WHERE bbox_x2 = 2 AND bbox_y2 = 2
                """).first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(orphans, 0)
        }
    }

    // MARK: Helpers

    /// The label the fake ML service put into a JPEG's comment segment.
    func label(of jpeg: Data) -> String? {
        guard jpeg.count > 6, jpeg.starts(with: [0xFF, 0xD8, 0xFF, 0xFE]) else { return nil }
        let length = Int(jpeg[4]) << 8 | Int(jpeg[5])
        return String(decoding: jpeg[6..<(4 + length)], as: UTF8.self)
    }

    private func asyncFirst<T: Sendable>(_ items: [T], where predicate: (T) async throws -> Bool) async throws -> T? {
        for item in items where try await predicate(item) { return item }
        return nil
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class ThumbnailTestsOnPostgres: ThumbnailTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testImagesFromCallbacksAreServedFromStorage() async throws { try await super.testImagesFromCallbacksAreServedFromStorage() }
}
