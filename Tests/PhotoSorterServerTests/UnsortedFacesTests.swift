import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import XCTest

/// Unsure faces (`FaceModel.unsureBelowNorm`) are stored and drawn but start no person: unsorted, they stay out of
/// persons, counts and the index until they match someone — live, in a re-cluster, or placed by a user.
class UnsortedFacesTests: DatabaseTestCase {
    /// The fake ML service sends the fixture's dlib vectors as ArcFace results (repeated to 512 values), so the test
    /// runs ArcFace's unsure floor with thresholds that suit those vectors.
    private static let arcfaceWithDlibVectors = FakeMLService.Behaviour(model: .arcface, embeddingNorms: [
        "face_recognition_examples/kit_harington": 12, "face_recognition_examples/_group/kit_with_rose": 12])
    private static func dlibThresholds(_ config: inout ServiceConfig) {
        config.matchThreshold = FaceModel.dlib.policy.matchThreshold
        config.smallPersonMargin = FaceModel.dlib.policy.smallPersonMargin
        config.mirrorThreshold = FaceModel.dlib.policy.mirrorThreshold
    }

    /// Kit Harington's faces (and Rose's, in the one photo of both) are all unsure: none starts a person, so they
    /// stay unsorted while everyone else is sorted as before; they are drawn on their photos with no person, are not
    /// in the index, and "not this person" on one is refused. Placed in a new person by hand, one face becomes a
    /// person the others can match: a re-cluster moves Kit's other faces there (a clear match), Rose's stays
    /// unsorted, and a second re-cluster changes nothing; a restart loads the same index.
    func testUnsureFacesStartNoPersonButJoinOneTheyMatch() async throws {
        try await TestService.run(flavor, ml: Self.arcfaceWithDlibVectors, tune: Self.dlibThresholds) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            XCTAssertEqual(service.services.identity.model, .arcface)
            let photos = try await service.photos()
            let kitPhotos = photos.filter { $0.path.contains("/kit_harington/") || $0.path.hasSuffix("/kit_with_rose.jpg") }
            XCTAssertEqual(kitPhotos.count, 4)
            var kitFace: Int64?
            for photo in kitPhotos {
                let detections = try await service.photo(photo.photoID).detections ?? []
                XCTAssertFalse(detections.isEmpty, "an unsure face is still stored and drawn")
                XCTAssertTrue(detections.allSatisfy { $0.personID == nil }, "\(photo.path): \(detections)")
                XCTAssertEqual(photo.personIDs, [])
                if photo.path.hasSuffix("/john1.jpeg") { kitFace = detections.first?.embeddingID }
            }
            let unsorted = try XCTUnwrap(kitFace)
            let others = try await service.photo(try XCTUnwrap(photos.first { $0.path.hasSuffix("/obama/obama.jpg") }).photoID)
            XCTAssertNotNil(others.detections?.first?.personID, "a face of good quality still starts its person")
            let index = service.services.identity.state.withLockedValue { $0.index }
            let stored = try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM embeddings WHERE person_id IS NOT NULL").first()!
                .decode(column: "n", as: Int.self)
            XCTAssertEqual(index.personIDs.reduce(0) { $0 + index.faceCount(of: $1) }, stored, "unsorted faces are not in the index")
            try await service.assertConsistent()

            let reject = try await service.request(.POST, "/faces/\(unsorted)/reject")
            XCTAssertEqual(reject.status, .conflict)
            XCTAssertTrue(reject.reason.contains("unsorted"), reject.reason)
            let confirm = try await service.request(.POST, "/faces/\(unsorted)/confirm")
            XCTAssertEqual(confirm.status, .conflict)

            let placed = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [unsorted], toPersonID: nil))
                .decode(MoveResult.self)
            XCTAssertTrue(placed.createdPerson)
            try await service.assertConsistent()
            let reclustered = try await service.recluster()
            XCTAssertGreaterThan(reclustered.facesMoved, 0)
            for photo in kitPhotos {
                let persons = (try await service.photo(photo.photoID).detections ?? []).map(\.personID)
                XCTAssertEqual(persons.filter { $0 == placed.personID }.count, 1, "\(photo.path): Kit matches the placed face")
                XCTAssertEqual(persons.count - 1, persons.filter { $0 == nil }.count, "\(photo.path): Rose stays unsorted")
            }
            try await service.assertConsistent()
            let again = try await service.recluster()
            XCTAssertEqual(again.facesMoved, 0)

            let live = service.services.identity.state.withLockedValue { $0.index }
            try await service.services.identity.load()
            let loaded = service.services.identity.state.withLockedValue { $0.index }
            XCTAssertEqual(loaded.lookIDs, live.lookIDs)
            for look in live.lookIDs { XCTAssertEqual(loaded.faceCount(ofLook: look), live.faceCount(ofLook: look)) }
        }
    }

    /// "Not this person" on an unsure face that joined a person (Kit's faces, after one was placed by hand and a
    /// re-cluster pulled in the rest) sends it where the rule would have: it matches no other person, and as an
    /// unsure face it starts none, so it goes unsorted — not into a new person of its own.
    func testNotThisPersonOnAnUnsureFaceThatMatchesNoOneElseLeavesItUnsorted() async throws {
        try await TestService.run(flavor, ml: Self.arcfaceWithDlibVectors, tune: Self.dlibThresholds) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let photos = try await service.photos()
            let john1 = try XCTUnwrap(photos.first { $0.path.hasSuffix("/kit_harington/john1.jpeg") })
            let john1Faces = try await service.photo(john1.photoID).detections
            let placedFace = try XCTUnwrap(john1Faces?.first?.embeddingID)
            let placed = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [placedFace], toPersonID: nil))
                .decode(MoveResult.self)
            _ = try await service.recluster()
            let john2 = try XCTUnwrap(photos.first { $0.path.hasSuffix("/kit_harington/john2.jpeg") })
            let john2Faces = try await service.photo(john2.photoID).detections
            let joined = try XCTUnwrap(john2Faces?.first)
            XCTAssertEqual(joined.personID, placed.personID, "the re-cluster pulled Kit's other face in")
            let personsBefore = try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM persons").first()!
                .decode(column: "n", as: Int.self)

            let rejected = try await service.request(.POST, "/faces/\(joined.embeddingID)/reject").decode(RejectResult.self)
            XCTAssertEqual(rejected.rejectedPersonID, placed.personID)
            XCTAssertNil(rejected.personID, "an unsure face matching no one else goes unsorted")
            XCTAssertFalse(rejected.createdPerson)
            let john2FacesAfter = try await service.photo(john2.photoID).detections
            XCTAssertNil(john2FacesAfter?.first?.personID)
            let personsAfter = try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM persons").first()!
                .decode(column: "n", as: Int.self)
            XCTAssertEqual(personsAfter, personsBefore, "no person was started for it")
            try await service.assertConsistent()
        }
    }

    /// With dlib, whose norm says nothing about quality, the same norms change nothing: every face may start a person.
    func testNoFaceIsUnsureForAModelWithoutAFloor() async throws {
        try await TestService.run(flavor, ml: FakeMLService.Behaviour(embeddingNorms: ["face_recognition_examples/kit_harington": 0.5])) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/kit_harington")))
            let photos = try await service.photos()
            for photo in photos {
                XCTAssertFalse(photo.personIDs.isEmpty, photo.path)
            }
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class UnsortedFacesTestsOnPostgres: UnsortedFacesTests {
    override class var flavor: DatabaseFlavor { .postgres }
    override func testUnsureFacesStartNoPersonButJoinOneTheyMatch() async throws { try await super.testUnsureFacesStartNoPersonButJoinOneTheyMatch() }
    override func testNoFaceIsUnsureForAModelWithoutAFloor() async throws { try await super.testNoFaceIsUnsureForAModelWithoutAFloor() }
    override func testNotThisPersonOnAnUnsureFaceThatMatchesNoOneElseLeavesItUnsorted() async throws {
        try await super.testNotThisPersonOnAnUnsureFaceThatMatchesNoOneElseLeavesItUnsorted()
    }
}
