import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// The ML service's results (POST /callback/photo-processed): one applied twice writes nothing the second time,
/// concurrent results carrying one new face create one person, and bad input (a missing or forbidden folder,
/// unknown ids, a result for no photo or with a broken embedding) gets a clear 4xx and writes nothing.
class ResultCallbackTests: DatabaseTestCase {
    /// The same callback twice returns the same answer and writes nothing the second time; a second,
    /// different result for an already processed photo is ignored.
    func testDuplicateCallbackIsIdempotent() async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            let folder = URL.faces("face_recognition_examples/alex_lacamoire")
            await service.services.ingest.waitForScan(try await service.ingest(folder))
            let firstPhoto = try await service.photos().first
            let photo = try XCTUnwrap(firstPhoto)
            let fixture = try XCTUnwrap(EmbeddingFixture.shared.photo("face_recognition_examples/alex_lacamoire/" + photo.filename))
            let body = FakeMLService.callback(photoID: photo.photoID, callbackID: "p\(photo.photoID)-a1", faces: fixture.faces)
            let first = try await service.request(.POST, "/callback/photo-processed", body: body)
            XCTAssertEqual(first.status, .ok, first.reason)
            let second = try await service.request(.POST, "/callback/photo-processed", body: body)
            XCTAssertEqual(try second.decode(CallbackResponse.self), try first.decode(CallbackResponse.self))
            let other = try await service.request(.POST, "/callback/photo-processed",
                                                  body: FakeMLService.callback(photoID: photo.photoID, callbackID: "p\(photo.photoID)-a2", faces: fixture.faces))
            let otherReply = try other.decode(CallbackResponse.self)
            XCTAssertEqual(otherReply.createdPersonIDs, [])
            let stored = try await service.photo(photo.photoID)
            XCTAssertEqual(stored.detections?.count, fixture.faces.count)
            XCTAssertEqual(try first.decode(CallbackResponse.self).personIDs, stored.personIDs)
            let faceRows = try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM embeddings").first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(faceRows, fixture.faces.count)
        }
    }

    /// Concurrent callbacks carrying the same unseen face create exactly one person.
    func testConcurrentCallbacksCreateOnePersonForOneNewFace() async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("lfw_small/Aaron_Peirsol")))
            let photos = try await service.photos()
            XCTAssertGreaterThanOrEqual(photos.count, 4)
            let face = try XCTUnwrap(EmbeddingFixture.shared.photo("lfw_small/Aaron_Peirsol/" + photos[0].filename)?.faces.first)
            let replies = try await withThrowingTaskGroup(of: CallbackResponse.self) { group in
                for photo in photos {
                    group.addTask {
                        try await service.request(.POST, "/callback/photo-processed",
                                                  body: FakeMLService.callback(photoID: photo.photoID, callbackID: "c\(photo.photoID)", faces: [face])).decode()
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            XCTAssertEqual(replies.flatMap(\.createdPersonIDs).count, 1)
            XCTAssertEqual(Set(replies.flatMap(\.personIDs)).count, 1)
        }
    }

    /// Bad input gets a clear 4xx and writes nothing.
    func testBadInputGetsClearErrors() async throws {
        try await TestService.run(flavor, backgroundWork: false, tune: { $0.allowedRoots = [URL.faces("lfw_small").path] }) { service in
            let missing = try await service.request(.POST, "/ingest-folder", json: IngestRequest(path: "/no/such/folder"))
            XCTAssertEqual(missing.status, .notFound)
            XCTAssertTrue(missing.reason.contains("folder not found"), missing.reason)
            let outside = try await service.request(.POST, "/ingest-folder", json: IngestRequest(path: URL.faces("dlib_faces").path))
            XCTAssertEqual(outside.status, .forbidden)
            let malformed = try await service.request(.POST, "/ingest-folder", body: Data("{\"path\": ".utf8))
            XCTAssertEqual(malformed.status, .badRequest)
            let s_photo999 = try await service.request(.GET, "/photo/999").status
            XCTAssertEqual(s_photo999, .notFound)
            let s_photoabc = try await service.request(.GET, "/photo/abc").status
            XCTAssertEqual(s_photoabc, .unprocessableEntity)
            let s_person999 = try await service.request(.GET, "/person/999").status
            XCTAssertEqual(s_person999, .notFound)
            let s_ingeststatusnope = try await service.request(.GET, "/ingest-status/nope").status
            XCTAssertEqual(s_ingeststatusnope, .notFound)
            let face = EmbeddingFixture.shared.photos(inSet: "lfw_small")[0].faces
            let unknown = try await service.request(.POST, "/callback/photo-processed", body: FakeMLService.callback(photoID: 424242, callbackID: "x", faces: face))
            XCTAssertEqual(unknown.status, .notFound)
            XCTAssertTrue(unknown.reason.contains("424242"))
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("lfw_small/Aaron_Peirsol")))
            let firstPhoto = try await service.photos().first
            let photoID = try XCTUnwrap(firstPhoto?.photoID)
            var broken = try JSONSerialization.jsonObject(with: FakeMLService.callback(photoID: photoID, callbackID: "y", faces: face + face)) as! [String: Any]
            var detections = broken["detections"] as! [[String: Any]]
            detections[1]["embedding"] = "AAAA"
            broken["detections"] = detections
            let invalid = try await service.request(.POST, "/callback/photo-processed", body: try JSONSerialization.data(withJSONObject: broken))
            XCTAssertEqual(invalid.status, .unprocessableEntity)
            XCTAssertTrue(invalid.reason.contains("embedding"), invalid.reason)
            // `new_persons` is not kept, but a wrongly typed entry is refused as the document says (fuzzing found it accepted).
            var typo = try JSONSerialization.jsonObject(with: FakeMLService.callback(photoID: photoID, callbackID: "z", faces: face)) as! [String: Any]
            typo["new_persons"] = [["suggested_display_name": 42]]
            let mistyped = try await service.request(.POST, "/callback/photo-processed", body: try JSONSerialization.data(withJSONObject: typo))
            XCTAssertEqual(mistyped.status, .badRequest, mistyped.reason)
            XCTAssertTrue(mistyped.reason.contains("suggested_display_name"), mistyped.reason)
            let stored = try await service.photo(photoID)
            XCTAssertEqual(stored.status, .ready)
            XCTAssertEqual(stored.detections, [])
            XCTAssertEqual(service.services.identity.personCount, 0)
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class ResultCallbackTestsOnPostgres: ResultCallbackTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testDuplicateCallbackIsIdempotent() async throws { try await super.testDuplicateCallbackIsIdempotent() }
}
