import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// Sorting photos into people, proven through the HTTP API on real (recorded dlib) embeddings: each person gets one
/// id across photos and keeps it as the library grows, a photo without faces is marked so, and one photo can be
/// analysed synchronously.
class PeopleRecognitionTests: DatabaseTestCase {
    /// Happy path: every face_recognition_examples person gets one id across photos; no id is shared.
    func testIngestedPeopleGetConsistentDistinctIDs() async throws {
        try await TestService.run(flavor) { service in
            let folder = URL.faces("face_recognition_examples")
            let status = try await service.waitUntilDone(try await service.ingest(folder, batchSize: 5))
            XCTAssertEqual(status.processed, status.scanned)
            XCTAssertEqual(status.failed, 0)
            XCTAssertEqual(status.inserted, status.scanned)
            XCTAssertEqual(status.status, "COMPLETED")
            XCTAssertGreaterThan(status.faces, 20)
            var idsByIdentity: [String: Set<Int64>] = [:]
            for summary in try await service.photos() {
                let parts = summary.path.dropFirst(folder.path.count + 1).split(separator: "/")
                guard parts.count == 2, !parts[0].hasPrefix("_") else { continue }
                let photo = try await service.photo(summary.photoID)
                XCTAssertEqual(photo.status, .processed)
                guard let labelled = photo.detections?.max(by: { $0.bbox.area < $1.bbox.area }) else { continue }
                idsByIdentity[String(parts[0]), default: []].insert(labelled.personID!)
            }
            XCTAssertEqual(idsByIdentity.count, 6)
            for (identity, ids) in idsByIdentity { XCTAssertEqual(ids.count, 1, "\(identity) split over \(ids)") }
            let all = idsByIdentity.values.flatMap { $0 }
            XCTAssertEqual(Set(all).count, all.count, "two people share an id: \(idsByIdentity)")

            let obamaID = idsByIdentity["obama"]!.first!
            let person = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self)
            XCTAssertGreaterThanOrEqual(person.photoCount, 6)
            XCTAssertTrue(person.examplePhotos.allSatisfy { $0.path.contains("/obama/") || $0.path.contains("/_group/") })
            XCTAssertNil(person.representativeEmbedding)
        }
    }

    /// A photo without faces is PROCESSED with no_faces; group photos carry several persons.
    func testNoFacePhotoIsMarkedNoFaces() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("dlib_faces")))
            let photos = try await service.photos()
            let noFace = try XCTUnwrap(photos.first { $0.path.contains("/_noface/") })
            XCTAssertEqual(noFace.status, .processed)
            XCTAssertEqual(noFace.noFaces, true)
            XCTAssertEqual(noFace.personIDs, [])
            let group = try XCTUnwrap(photos.max { $0.personIDs.count < $1.personIDs.count })
            XCTAssertGreaterThan(group.personIDs.count, 10)
            XCTAssertEqual(Set(group.personIDs).count, group.personIDs.count)
        }
    }

    /// Sort half of lfw_small (every other photo of each person), then the rest: of the faces placed in the first
    /// run, at most 1% end under another id (following redirects of recorded merges).
    func testIDsStayStableAsTheLibraryGrows() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("photo-sorter-halves-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let lfw = URL.faces("lfw_small")
        for person in try FileManager.default.contentsOfDirectory(atPath: lfw.path).sorted() {
            let files = try FileManager.default.contentsOfDirectory(atPath: lfw.appendingPathComponent(person).path).sorted()
            for (n, file) in files.enumerated() {
                let half = root.appendingPathComponent(n % 2 == 0 ? "first" : "second").appendingPathComponent(person)
                try FileManager.default.createDirectory(at: half, withIntermediateDirectories: true)
                try FileManager.default.createSymbolicLink(at: half.appendingPathComponent(file),
                                                           withDestinationURL: lfw.appendingPathComponent(person).appendingPathComponent(file))
            }
        }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(root.appendingPathComponent("first")))
            _ = try await service.recluster()
            let before = try await service.facePersons()
            _ = try await service.waitUntilDone(try await service.ingest(root.appendingPathComponent("second")))
            let result = try await service.recluster()
            let after = try await service.facePersons()
            let redirects = try await service.services.database.sql.raw("SELECT id, merged_into FROM persons WHERE merged_into IS NOT NULL")
                .all().reduce(into: [Int64: Int64]()) { $0[try $1.decode(column: "id", as: Int64.self)] = try $1.decode(column: "merged_into", as: Int64.self) }
            let moved = before.filter { face, person in after[face] != person.map { redirects[$0] ?? $0 } }
            XCTAssertGreaterThan(before.count, 250)
            XCTAssertLessThanOrEqual(Double(moved.count), 0.01 * Double(before.count),
                                     "\(moved.count) of \(before.count) first-run faces changed id; recluster: \(result)")
        }
    }

    /// POST /classify-photo analyses one file synchronously and stores it like a callback would.
    func testClassifyPhotoIsSynchronous() async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            let path = URL.faces("face_recognition_examples/obama/obama.jpg").path
            let reply = try await service.request(.POST, "/classify-photo", json: ClassifyRequest(photoID: nil, path: path))
            XCTAssertEqual(reply.status, .ok, reply.reason)
            let photo = try reply.decode(PhotoView.self)
            XCTAssertEqual(photo.status, .processed)
            XCTAssertEqual(photo.detections?.count, 1)
            XCTAssertEqual(photo.personIDs.count, 1)
            let again = try await service.request(.POST, "/classify-photo", json: ClassifyRequest(photoID: photo.photoID, path: nil))
            XCTAssertEqual(try again.decode(PhotoView.self).personIDs, photo.personIDs)
            let missing = try await service.request(.POST, "/classify-photo", json: ClassifyRequest(photoID: nil, path: "/nope/x.jpg"))
            XCTAssertEqual(missing.status, .notFound)
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class PeopleRecognitionTestsOnPostgres: PeopleRecognitionTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testIngestedPeopleGetConsistentDistinctIDs() async throws { try await super.testIngestedPeopleGetConsistentDistinctIDs() }
}
