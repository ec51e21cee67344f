import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// The library follows the files (README "The library follows the files"): a file moved, renamed or moved to
/// another root is the same photo (same id, faces, persons, corrections, no ML call); a vanished file's photo is
/// MISSING (hidden, its faces out of every person) until its content comes back, or until `prune`; a root that is
/// gone or suddenly empty marks nothing missing; a copy reuses the analysis; changed content carries corrections to
/// the face that overlaps most. After every step the library is consistent and holds one row per file plus the
/// missing photos.
class FollowingFilesTests: DatabaseTestCase {
    /// A scratch folder of fixture photos, removed at the end of the test.
    struct Folder {
        let url: URL

        init(_ name: String = "follow") throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }

        func path(_ relative: String) -> String { url.appendingPathComponent(relative).path }

        /// Copies fixture photo `fixture` (relative to the faces folder) to `relative`.
        func add(_ fixture: String, as relative: String) throws {
            let target = url.appendingPathComponent(relative)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: URL.faces(fixture), to: target)
        }

        func move(_ from: String, to: String) throws {
            let target = url.appendingPathComponent(to)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            XCTAssertEqual(rename(path(from), target.path), 0, "rename \(from) → \(to)")
        }

        func remove(_ relative: String) throws { try FileManager.default.removeItem(atPath: path(relative)) }

        /// Every file (or symlink) below the folder, hidden ones aside: XMP sidecars too, which a scan counts with
        /// their photos.
        var files: [String] {
            let keys: Set<URLResourceKey> = [.isRegularFileKey, .isSymbolicLinkKey]
            return (FileManager.default.enumerator(at: url, includingPropertiesForKeys: Array(keys), options: .skipsHiddenFiles)?
                .compactMap { item -> String? in
                    guard let file = item as? URL, let values = try? file.resourceValues(forKeys: keys),
                          values.isRegularFile == true || values.isSymbolicLink == true else { return nil }
                    return file.path
                }) ?? []
        }

        func delete() { try? FileManager.default.removeItem(at: url) }
    }

    static let obama = ["face_recognition_examples/obama/obama.jpg", "face_recognition_examples/obama/obama2.jpg",
                        "face_recognition_examples/obama/obama3.jpg"]
    static let biden = "face_recognition_examples/biden/biden.jpg"

    /// A folder with three photos of one person and one of another.
    func makeLibrary() throws -> Folder {
        let folder = try Folder()
        for (n, fixture) in Self.obama.enumerated() { try folder.add(fixture, as: "obama\(n).jpg") }
        try folder.add(Self.biden, as: "biden.jpg")
        return folder
    }

    /// Every photo row, missing ones included, by path.
    func allPhotos(_ service: TestService) async throws -> [String: (id: Int64, status: String)] {
        try await service.services.database.sql.raw("SELECT id, path, status FROM photos").all().reduce(into: [:]) {
            $0[try $1.decode(column: "path", as: String.self)] = (try $1.decode(column: "id", as: Int64.self),
                                                                  try $1.decode(column: "status", as: String.self))
        }
    }

    /// Nothing lost, nothing duplicated: one row per file of `folders`, plus the missing photos; no path twice.
    func assertRowsMatchFiles(_ service: TestService, _ folders: [Folder], file: StaticString = #filePath, line: UInt = #line) async throws {
        let rows = try await allPhotos(service)
        let present = Set(rows.filter { $0.value.status != PhotoStatus.missing.rawValue }.keys)
        XCTAssertEqual(present, Set(folders.flatMap(\.files)), "rows of present photos = files", file: file, line: line)
        try await service.assertConsistent(file: file, line: line)
    }

    /// The person of each face of the photo at `path`.
    func persons(at path: String, _ service: TestService) async throws -> [Int64] {
        let photo = try await service.photo(path: path)
        return try XCTUnwrap(photo).personIDs
    }

    /// Moving every photo into a new folder (as people tidy up) keeps each photo's id, faces, persons and
    /// corrections, with no ML call and no new row; exports follow the move.
    func testMovedPhotosKeepTheirIDsFacesAndCorrections() async throws {
        let folder = try makeLibrary()
        defer { folder.delete() }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let before = try await allPhotos(service)
            let obamaID = try await persons(at: folder.path("obama0.jpg"), service)[0]
            // A correction: the face of obama2.jpg is put in a person of its own, confirmed.
            let faceOfObama2 = try await service.faces(of: obamaID).first { $0.path == folder.path("obama2.jpg") }
            let face = try XCTUnwrap(faceOfObama2)
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [face.faceID], toPersonID: nil))
                .decode(MoveResult.self)
            let requests = service.ml.requestedPhotoIDs.count

            for name in ["obama0.jpg", "obama1.jpg", "obama2.jpg", "biden.jpg"] { try folder.move(name, to: "2024/\(name)") }
            let rescan = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(rescan.moved, 4)
            XCTAssertEqual(rescan.inserted, 0)
            XCTAssertEqual(rescan.queued, 0)
            XCTAssertEqual(rescan.missing, 0)
            XCTAssertEqual(rescan.scanned, rescan.skipped + rescan.queued + rescan.rejected)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, requests, "no photo was analysed again")
            let after = try await allPhotos(service)
            XCTAssertEqual(after.count, before.count, "no new row")
            for name in ["obama0.jpg", "obama1.jpg", "obama2.jpg", "biden.jpg"] {
                XCTAssertEqual(after[folder.path("2024/\(name)")]?.id, before[folder.path(name)]?.id, name)
            }
            let moved = try await service.request(.GET, "/faces/\(face.faceID)").decode(FaceView.self)
            XCTAssertEqual(moved.personID, split.personID)
            XCTAssertTrue(moved.confirmed)
            XCTAssertEqual(moved.path, folder.path("2024/obama2.jpg"))
            let obama = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self)
            XCTAssertEqual(obama.photoCount, 2, "counts did not double")
            try await assertRowsMatchFiles(service, [folder])

            let export = try Folder("export")
            defer { export.delete() }
            let persons = try await service.services.people.exportPersons(minPhotos: 1, includeUnnamed: true)
            _ = try ExportWriter(directory: export.url.path, link: .symlink).export(persons)
            let targets = try export.files.map { try FileManager.default.destinationOfSymbolicLink(atPath: $0) }
            XCTAssertFalse(targets.isEmpty)
            XCTAssertTrue(targets.allSatisfy { $0.hasPrefix(folder.path("2024/")) }, "\(targets)")
        }
    }

    /// A renamed file, and a rename that changes only the case of its name, are the same photo.
    func testRenamesAndCaseOnlyRenamesKeepThePhoto() async throws {
        let folder = try makeLibrary()
        defer { folder.delete() }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let before = try await allPhotos(service)
            try folder.move("obama0.jpg", to: "holiday.jpg")
            try folder.move("biden.jpg", to: "BIDEN.jpg")
            let rescan = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(rescan.moved, 2)
            XCTAssertEqual(rescan.queued, 0)
            let after = try await allPhotos(service)
            XCTAssertEqual(after[folder.path("holiday.jpg")]?.id, before[folder.path("obama0.jpg")]?.id)
            XCTAssertEqual(after[folder.path("BIDEN.jpg")]?.id, before[folder.path("biden.jpg")]?.id)
            let renamed = try await service.photo(try XCTUnwrap(after[folder.path("BIDEN.jpg")]?.id))
            XCTAssertEqual(renamed.filename, "BIDEN.jpg")
            try await assertRowsMatchFiles(service, [folder])
        }
    }

    /// A photo moved from one root to another is the same photo whichever root is scanned first: scanned at its
    /// new root first it moves; its old root scanned first, it is MISSING, then restored at the new root.
    func testMoveAcrossRootsInEitherOrder() async throws {
        let first = try makeLibrary(), second = try Folder("second-root")
        defer { first.delete(); second.delete() }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(first.url))
            let before = try await allPhotos(service)
            let requests = service.ml.requestedPhotoIDs.count

            try FileManager.default.moveItem(atPath: first.path("obama0.jpg"), toPath: second.path("obama0.jpg"))
            let newRootFirst = try await service.waitUntilDone(try await service.ingest(second.url))
            XCTAssertEqual(newRootFirst.moved, 1)
            let oldRoot = try await service.waitUntilDone(try await service.ingest(first.url))
            XCTAssertEqual(oldRoot.missing, 0, "the moved photo is not missing from its old root")

            try FileManager.default.moveItem(atPath: first.path("obama1.jpg"), toPath: second.path("obama1.jpg"))
            let oldRootFirst = try await service.waitUntilDone(try await service.ingest(first.url))
            XCTAssertEqual(oldRootFirst.missing, 1)
            let id = try XCTUnwrap(before[first.path("obama1.jpg")]?.id)
            let statusAfterOldRoot = try await service.photo(id).status
            XCTAssertEqual(statusAfterOldRoot, .missing)
            let newRoot = try await service.waitUntilDone(try await service.ingest(second.url))
            XCTAssertEqual(newRoot.restored, 1)
            let after = try await allPhotos(service)
            XCTAssertEqual(after[second.path("obama0.jpg")]?.id, before[first.path("obama0.jpg")]?.id)
            XCTAssertEqual(after[second.path("obama1.jpg")]?.id, id)
            let statusAfterNewRoot = try await service.photo(id).status
            XCTAssertEqual(statusAfterNewRoot, .processed)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, requests)
            try await assertRowsMatchFiles(service, [first, second])
        }
    }

    /// A deleted file's photo is MISSING: hidden from the photo list, its faces out of their persons, the identity
    /// index and the review queue. The same content back (at another name) restores it whole, corrections too. The
    /// photo taken away is the one with the newest face: its face comes back under a new id, never its old one.
    func testDeletedPhotoGoesMissingAndComesBackWhole() async throws {
        let folder = try Folder()
        defer { folder.delete() }
        for (n, fixture) in Self.obama.enumerated() { try folder.add(fixture, as: "obama\(n).jpg") }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let newest = try await service.services.database.sql.raw("SELECT id, photo_id FROM embeddings ORDER BY id DESC LIMIT 1").first()!
            let faceID = try newest.decode(column: "id", as: Int64.self), id = try newest.decode(column: "photo_id", as: Int64.self)
            let victim = try await service.photo(id).path
            let obamaID = try await persons(at: victim, service)[0]
            _ = try await service.request(.POST, "/faces/\(faceID)/confirm")
            let requests = service.ml.requestedPhotoIDs.count

            let saved = try Data(contentsOf: URL(fileURLWithPath: victim))
            try FileManager.default.removeItem(atPath: victim)
            let rescan = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(rescan.missing, 1)
            let missing = try await service.photo(id)
            XCTAssertEqual(missing.status, .missing)
            XCTAssertNotNil(missing.missingSince)
            XCTAssertEqual(missing.personIDs, [])
            let inPhotoList = try await service.photos().contains { $0.photoID == id }
            XCTAssertFalse(inPhotoList, "hidden from the photo list")
            let listedMissing = try await service.request(.GET, "/photos?status=MISSING").decode(PhotoPage.self).photos
            XCTAssertEqual(listedMissing.map(\.photoID), [id])
            let person = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self)
            XCTAssertEqual(person.photoCount, 2)
            let facesStillShown = try await service.faces(of: obamaID).contains { $0.photoID == id }
            XCTAssertFalse(facesStillShown)
            let faceAnswer = try await service.request(.GET, "/faces/\(faceID)").status
            XCTAssertEqual(faceAnswer, .notFound)
            try await assertRowsMatchFiles(service, [folder])
            let exported = try await service.services.people.exportPersons(minPhotos: 1, includeUnnamed: true)
            XCTAssertFalse(exported.flatMap(\.photos).contains { $0.photoID == id }, "export drops a missing photo")
            let again = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(again.missing, 0, "a missing photo is counted once")

            try saved.write(to: URL(fileURLWithPath: folder.path("back/renamed.jpg")).creatingFolder())
            let back = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(back.restored, 1)
            let restored = try await service.photo(id)
            XCTAssertEqual(restored.status, .processed)
            XCTAssertEqual(restored.path, folder.path("back/renamed.jpg"))
            XCTAssertEqual(restored.personIDs, [obamaID])
            let face = try XCTUnwrap(restored.detections?.first?.embeddingID)
            XCTAssertGreaterThan(face, faceID, "a face back from a missing photo has a new id")
            let stillConfirmed = try await service.request(.GET, "/faces/\(face)").decode(FaceView.self).confirmed
            XCTAssertTrue(stillConfirmed, "the correction came back")
            let photosOfObama = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self).photoCount
            XCTAssertEqual(photosOfObama, 3)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, requests)
            try await assertRowsMatchFiles(service, [folder])
        }
    }

    /// `prune` deletes only photos missing for longer than its limit, and a dry run deletes nothing.
    func testPruneDeletesMissingPhotosOlderThanItsLimit() async throws {
        let folder = try makeLibrary()
        defer { folder.delete() }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let photoID = try await allPhotos(service)[folder.path("biden.jpg")]?.id
            let id = try XCTUnwrap(photoID)
            try folder.remove("biden.jpg")
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let prune = service.services.missingPhotos
            let recent = try await prune.prune(olderThanSeconds: 3600, dryRun: false)
            XCTAssertEqual(recent, PruneResult(photos: 0, dryRun: false, keptMissing: 1))
            let dryRun = try await prune.prune(olderThanSeconds: 0, dryRun: true)
            XCTAssertEqual(dryRun, PruneResult(photos: 1, dryRun: true, keptMissing: 0))
            let statusAfterDryRun = try await service.photo(id).status
            XCTAssertEqual(statusAfterDryRun, .missing)
            let pruned = try await prune.prune(olderThanSeconds: 0, dryRun: false)
            XCTAssertEqual(pruned.photos, 1)
            let prunedAnswer = try await service.request(.GET, "/photo/\(id)").status
            XCTAssertEqual(prunedAnswer, .notFound)
            let parked = try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM parked_faces").first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(parked, 0)
            try await assertRowsMatchFiles(service, [folder])
        }
    }

    /// A root renamed away, or left an empty mount point, is an unplugged drive: the job ends ROOT_UNAVAILABLE
    /// with the reason, and nothing is marked missing.
    func testUnavailableRootMarksNothingMissing() async throws {
        let folder = try makeLibrary()
        let away = URL(fileURLWithPath: folder.url.path + "-away")
        defer { folder.delete(); try? FileManager.default.removeItem(at: away) }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            try FileManager.default.moveItem(at: folder.url, to: away)
            let gone = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(gone.status, "ROOT_UNAVAILABLE")
            XCTAssertTrue(gone.lastError?.contains("the folder is gone") == true, gone.lastError ?? "")
            try FileManager.default.createDirectory(at: folder.url, withIntermediateDirectories: true)
            let empty = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(empty.status, "ROOT_UNAVAILABLE")
            XCTAssertTrue(empty.lastError?.contains("empty") == true, empty.lastError ?? "")
            let anyMissing = try await allPhotos(service).values.contains { $0.status == PhotoStatus.missing.rawValue }
            XCTAssertFalse(anyMissing)
            let listedCount = try await service.photos().count
            XCTAssertEqual(listedCount, 4)
            let never = try await service.request(.POST, "/ingest-folder", json: IngestRequest(path: folder.url.path + "-never-existed"))
            XCTAssertEqual(never.status, .notFound, "a folder that never held photos is simply not found")
        }
    }

    /// A copy of an analysed photo is a photo of its own that reuses the analysis (no ML call) and joins the same
    /// persons; two identical new files in one scan are analysed once.
    func testCopiesReuseTheAnalysis() async throws {
        let folder = try makeLibrary()
        defer { folder.delete() }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let requests = service.ml.requestedPhotoIDs.count
            let obamaID = try await persons(at: folder.path("obama0.jpg"), service)[0]
            try folder.add(Self.obama[0], as: "backup/obama0.jpg")
            let rescan = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(rescan.copies, 1)
            XCTAssertEqual(rescan.queued, 0)
            let storedCopy = try await service.photo(path: folder.path("backup/obama0.jpg"))
            let copy = try XCTUnwrap(storedCopy)
            XCTAssertEqual(copy.status, .processed)
            XCTAssertEqual(copy.personIDs, [obamaID])
            let originalID = try await service.photo(path: folder.path("obama0.jpg"))?.photoID
            XCTAssertNotEqual(copy.photoID, originalID)
            let photosOfObama = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self).photoCount
            XCTAssertEqual(photosOfObama, 4)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, requests)

            try folder.add("face_recognition_examples/_group/two_people.jpg", as: "party/a.jpg")
            try folder.add("face_recognition_examples/_group/two_people.jpg", as: "party/b.jpg")
            let twins = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(twins.processed, 7, "4 photos, the copy and the two new files: \(twins)")
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, requests + 1, "one content, one analysis")
            let storedA = try await service.photo(path: folder.path("party/a.jpg"))
            let a = try XCTUnwrap(storedA)
            let storedB = try await service.photo(path: folder.path("party/b.jpg"))
            let b = try XCTUnwrap(storedB)
            XCTAssertEqual(a.personIDs, b.personIDs)
            XCTAssertEqual(a.personIDs.count, 2)
            try await assertRowsMatchFiles(service, [folder])
        }
    }

    /// New content at a stored path is analysed again under the same id, and each new face takes the corrections of
    /// the old face it overlaps most: a face confirmed in a person stays there, confirmed.
    func testChangedContentCarriesCorrectionsToTheOverlappingFace() async throws {
        let folder = try makeLibrary()
        defer { folder.delete() }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder.url))
            let path = folder.path("obama1.jpg")
            let photoID = try await service.photo(path: path)?.photoID
            let id = try XCTUnwrap(photoID)
            let firstFace = try await service.photo(id).detections?.first?.embeddingID
            let face = try XCTUnwrap(firstFace)
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [face], toPersonID: nil)).decode(MoveResult.self)
            let requests = service.ml.requestedPhotoIDs.count

            // Same picture, other bytes (as an editor that rewrites metadata leaves it): new content at the path.
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes.append(Data("edited".utf8))
            try bytes.write(to: URL(fileURLWithPath: path))
            let rescan = try await service.waitUntilDone(try await service.ingest(folder.url))
            XCTAssertEqual(rescan.queued, 1)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, requests + 1)
            let analysed = try await service.photo(id)
            XCTAssertEqual(analysed.status, .processed)
            XCTAssertEqual(analysed.personIDs, [split.personID])
            let newFace = try XCTUnwrap(analysed.detections?.first?.embeddingID)
            XCTAssertNotEqual(newFace, face)
            let newFaceConfirmed = try await service.request(.GET, "/faces/\(newFace)").decode(FaceView.self).confirmed
            XCTAssertTrue(newFaceConfirmed)
            let parked = try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM parked_faces").first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(parked, 0, "the carried corrections are not kept twice")
            try await assertRowsMatchFiles(service, [folder])
        }
    }

    /// Files renamed while a scan runs are neither lost nor duplicated: after the next scan every file has one row,
    /// none is missing, and no content was analysed twice.
    func testRenamesDuringAScanLoseAndDuplicateNothing() async throws {
        let folder = try Folder("renames")
        defer { folder.delete() }
        let jpeg = try Data(contentsOf: URL.faces(Self.obama[0]))
        // Several transactions, under the queue's high watermark (nothing is analysed: no workers run).
        let count = 2 * IngestService.entriesPerTransaction
        for n in 0..<count {
            try (jpeg + Data("\(n)".utf8)).write(to: URL(fileURLWithPath: folder.path(String(format: "p%05d.jpg", n))))
        }
        try await TestService.run(flavor, backgroundWork: false) { service in
            let jobID = try await service.ingest(folder.url, batchSize: 100)
            var renamed = 0
            for n in stride(from: 0, to: count, by: 7) {
                try folder.move(String(format: "p%05d.jpg", n), to: String(format: "r%05d.jpg", n))
                renamed += 1
            }
            await service.services.ingest.waitForScan(jobID)
            let second = try await service.ingest(folder.url, batchSize: 100)
            await service.services.ingest.waitForScan(second)
            let status = try await service.request(.GET, "/ingest-status/\(second)").decode(IngestStatus.self)
            XCTAssertEqual(status.scanned, count)
            let rows = try await allPhotos(service)
            XCTAssertEqual(Set(rows.keys), Set(folder.files), "one row per file, none left at an old name")
            XCTAssertFalse(rows.values.contains { $0.status == PhotoStatus.missing.rawValue })
            let hashes = try await service.services.database.sql.raw("SELECT COUNT(DISTINCT full_hash) AS n FROM photos").first()!
                .decode(column: "n", as: Int.self)
            XCTAssertEqual(hashes, count, "one row per content")
            XCTAssertGreaterThan(renamed, 0)
        }
    }
}

extension URL {
    /// This file URL, after its folder was created.
    func creatingFolder() throws -> URL {
        try FileManager.default.createDirectory(at: deletingLastPathComponent(), withIntermediateDirectories: true)
        return self
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class FollowingFilesTestsOnPostgres: FollowingFilesTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testMovedPhotosKeepTheirIDsFacesAndCorrections() async throws { try await super.testMovedPhotosKeepTheirIDsFacesAndCorrections() }
}
