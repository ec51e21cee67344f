import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// Face names from XMP regions (README "Face names from XMP"), on the Swift side: the names the ML service read
/// with each analysis name persons and pull the rest of the library in, one name is one person, a sidecar edited
/// in another tool is read again at the next scan, and a name never overrides a user's correction.
class XMPNamesTests: DatabaseTestCase {
    typealias Folder = FollowingFilesTests.Folder

    static let obama = ["face_recognition_examples/obama/obama.jpg", "face_recognition_examples/obama/obama2.jpg",
                        "face_recognition_examples/obama/obama3.jpg"]
    static let biden = "face_recognition_examples/biden/biden.jpg"
    static let alex = "face_recognition_examples/alex_lacamoire/alex_lacamoire1.jpg"
    static let rose = "face_recognition_examples/rose_leslie/img1.jpg"

    /// Three photos of one person and one of each of three others.
    func makeLibrary() throws -> Folder {
        let folder = try Folder("xmp-names")
        for (n, fixture) in Self.obama.enumerated() { try folder.add(fixture, as: "obama\(n).jpg") }
        try folder.add(Self.biden, as: "biden.jpg")
        try folder.add(Self.alex, as: "alex.jpg")
        try folder.add(Self.rose, as: "rose.jpg")
        return folder
    }

    /// Waits until every name read so far is settled (applied or in conflict).
    func settledNames(_ service: TestService, expected: Int) async throws -> XMPNamesSummary {
        for _ in 0..<200 {
            let summary = try await service.request(.GET, "/xmp/names").decode(XMPNamesSummary.self)
            if summary.pending == 0, summary.applied + summary.conflicts >= expected { return summary }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await service.request(.GET, "/xmp/names").decode(XMPNamesSummary.self)
    }

    func face(of path: String, _ service: TestService) async throws -> FaceView {
        let stored = try await service.photo(path: path)
        let photo = try XCTUnwrap(stored, "no photo at \(path)")
        let faces = try await service.request(.GET, "/photo/\(photo.photoID)").decode(PhotoView.self).detections ?? []
        return try await service.request(.GET, "/faces/\(try XCTUnwrap(faces.first).embeddingID)").decode(FaceView.self)
    }

    func person(_ id: Int64, _ service: TestService) async throws -> PersonView {
        try await service.request(.GET, "/person/\(id)").decode(PersonView.self)
    }

    /// A name on one face names its person, so the person's other photos carry it; two persons given one name are
    /// one person; the named faces are confirmed.
    func testNamesFromRegionsNamePersonsAndOneNameIsOnePerson() async throws {
        let folder = try makeLibrary()
        defer { folder.delete() }
        var ml = FakeMLService.Behaviour()
        ml.xmpNames = [Self.obama[0]: [0: "Barack Obama"], Self.alex: [0: "  Twin Name "], Self.rose: [0: "twin name"]]
        try await TestService.run(flavor, ml: ml) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let summary = try await settledNames(service, expected: 3)
            XCTAssertEqual(summary.applied, 3, "\(summary.conflictList)")
            XCTAssertEqual(summary.conflicts, 0)

            let named = try await face(of: folder.path("obama0.jpg"), service)
            XCTAssertTrue(named.confirmed)
            let obama = try await person(try XCTUnwrap(named.personID), service)
            XCTAssertEqual(obama.displayName, "Barack Obama")
            for n in 1..<3 {
                let other = try await face(of: folder.path("obama\(n).jpg"), service)
                XCTAssertEqual(other.personID, obama.personID, "obama\(n).jpg is not with the named photo")
            }
            let alex = try await face(of: folder.path("alex.jpg"), service), rose = try await face(of: folder.path("rose.jpg"), service)
            XCTAssertEqual(alex.personID, rose.personID, "two persons given one name stayed two")
            XCTAssertTrue(alex.confirmed && rose.confirmed)
            let twins = try await service.request(.GET, "/persons?limit=100&min_photos=1").decode(PersonPage.self).persons
                .filter { $0.displayName?.lowercased() == "twin name" }
            XCTAssertEqual(twins.map(\.personID), [alex.personID])
            let biden = try await face(of: folder.path("biden.jpg"), service)
            let bidenPerson = try await person(try XCTUnwrap(biden.personID), service)
            XCTAssertNil(bidenPerson.displayName)
            try await service.assertConsistent()
        }
    }

    /// Editing a sidecar re-reads the photo's names at the next scan (an unchanged one does not), a new name from
    /// XMP moves a face XMP named before, and a name that contradicts a user's correction ("not this person", a
    /// face confirmed elsewhere) changes nothing and is listed as a conflict.
    func testEditedSidecarsAreReadAgainAndNeverOverrideUserCorrections() async throws {
        let folder = try makeLibrary()
        defer { folder.delete() }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let obamaFace = try await face(of: folder.path("obama0.jpg"), service)
            let obamaPerson = try XCTUnwrap(obamaFace.personID)
            _ = try await service.request(.PATCH, "/person/\(obamaPerson)", json: PersonUpdate(displayName: .some("Barack")))
            let biden = try await face(of: folder.path("biden.jpg"), service)
            let rejected = try await service.request(.POST, "/faces/\(biden.faceID)/reject", json: RejectRequest(personID: obamaPerson))
            XCTAssertEqual(rejected.status, .ok, rejected.reason)
            let alex = try await face(of: folder.path("alex.jpg"), service)
            let moved = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [alex.faceID], toPersonID: nil))
                .decode(MoveResult.self)

            service.ml.nameFaces([Self.biden: [0: "Barack"], Self.alex: [0: "Someone Else"], Self.rose: [0: "Rose Leslie"]])
            for name in ["biden.jpg.xmp", "alex.xmp", "rose.JPG.XMP"] {
                try Data("<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>".utf8).write(to: URL(fileURLWithPath: folder.path(name)))
            }
            let before = service.ml.requestedPhotoIDs.count
            let rescan = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(rescan.rejected, 0, "a sidecar was listed as a file that is no photo")
            XCTAssertEqual(service.ml.requestedPhotoIDs.count - before, 2, "only the photos whose sidecar appeared are analysed again")
            var summary = try await settledNames(service, expected: 2)
            XCTAssertEqual(summary.applied, 0)
            XCTAssertEqual(summary.conflicts, 2)
            XCTAssertEqual(Set(summary.conflictList.map(\.name)), ["Barack", "Someone Else"])
            XCTAssertTrue(summary.conflictList.contains { $0.name == "Barack" && $0.reason.contains("marked as not") }, "\(summary.conflictList)")
            XCTAssertTrue(summary.conflictList.contains { $0.name == "Someone Else" && $0.reason.contains("confirmed") }, "\(summary.conflictList)")
            let bidenNow = try await face(of: folder.path("biden.jpg"), service), alexNow = try await face(of: folder.path("alex.jpg"), service)
            XCTAssertNotEqual(bidenNow.personID, obamaPerson)
            XCTAssertEqual(alexNow.personID, moved.personID)

            // rose.JPG.XMP does not belong to rose.jpg (case differs in the photo's own name): written again as rose.xmp.
            try FileManager.default.removeItem(atPath: folder.path("rose.JPG.XMP"))
            try Data("<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>".utf8).write(to: URL(fileURLWithPath: folder.path("rose.xmp")))
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            summary = try await settledNames(service, expected: 3)
            XCTAssertEqual(summary.applied, 1)
            let rose = try await face(of: folder.path("rose.jpg"), service)
            let rosePerson = try await person(try XCTUnwrap(rose.personID), service)
            XCTAssertEqual(rosePerson.displayName, "Rose Leslie")
            XCTAssertTrue(rose.confirmed)

            // The name is changed in the other tool: the face follows it.
            service.ml.nameFaces([Self.rose: [0: "Rose L."]])
            try Data("<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><!-- renamed --></x:xmpmeta>".utf8).write(to: URL(fileURLWithPath: folder.path("rose.xmp")))
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            _ = try await settledNames(service, expected: 4)
            let renamed = try await face(of: folder.path("rose.jpg"), service)
            let renamedPerson = try await person(try XCTUnwrap(renamed.personID), service)
            XCTAssertEqual(renamedPerson.displayName, "Rose L.")

            let settled = service.ml.requestedPhotoIDs.count
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, settled, "an unchanged library was analysed again")
            try await service.assertConsistent()
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class XMPNamesTestsOnPostgres: XMPNamesTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testNamesFromRegionsNamePersonsAndOneNameIsOnePerson() async throws {
        try await super.testNamesFromRegionsNamePersonsAndOneNameIsOnePerson()
    }
}
