import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// The in-memory identity index restarts from a snapshot and catches up to exactly what a full load of every face
/// gives; a new snapshot replaces the old one.
class IdentitySnapshotTests: DatabaseTestCase {
    /// A restart from a snapshot, after faces were added, moved to a new person and removed with a changed file
    /// and persons merged since it was written, gives the index a full load of every face gives, and the one the
    /// running service held, looks and their owners included (a merge before the snapshot too); a bulk change (new
    /// generation) retires the snapshot.
    func testIndexRestartsFromSnapshotAndCatchesUp() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snapshot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let examples = URL.faces("face_recognition_examples")
        for person in ["obama", "biden"] {
            try FileManager.default.copyItem(at: examples.appendingPathComponent(person), to: folder.appendingPathComponent(person))
        }
        try await TestService.run(flavor) { service in
            let identity = service.services.identity
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            let (kept, absorbed) = try await service.twoPersonsNeverTogether(Set(try await service.photos().flatMap(\.personIDs)).sorted())
            let merge = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [kept, absorbed], into: kept))
            XCTAssertEqual(merge.status, .ok, merge.reason)
            XCTAssertEqual(identity.state.withLockedValue { $0.index.looks(of: kept) }, [kept, absorbed].sorted())
            let wrote = try await identity.saveSnapshot()
            XCTAssertTrue(wrote)
            let generation = try await IdentityService.generation(on: service.services.database.sql)
            let snapshot = try await IdentityLog.latestSnapshot(of: generation, on: service.services.database.sql)
            let marks = try XCTUnwrap(snapshot)

            // After the snapshot: new faces, a face moved to a new person, a changed file's faces removed.
            let photos = try await service.photos()
            let person = try XCTUnwrap(photos.first?.personIDs.first)
            let moved = try await service.faces(of: person)[0]
            let move = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [moved.faceID], toPersonID: nil))
            XCTAssertEqual(move.status, .ok, move.reason)
            let replaced = folder.appendingPathComponent("obama/obama2.jpg")
            try FileManager.default.removeItem(at: replaced)
            try FileManager.default.copyItem(at: examples.appendingPathComponent("biden/biden.jpg"), to: replaced)
            try FileManager.default.copyItem(at: examples.appendingPathComponent("kit_harington"), to: folder.appendingPathComponent("kit"))
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            // Not the person the moved face left: it is "not" that person.
            let (survivor, merged) = try await service.twoPersonsNeverTogether(
                Set(try await service.photos().flatMap(\.personIDs)).subtracting([person]).sorted())
            let later = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [survivor, merged], into: survivor))
            XCTAssertEqual(later.status, .ok, later.reason)
            try await service.assertConsistent()
            let live = profiles(identity)
            let liveOwners = owners(identity)
            let stored = try await service.services.database.sql.raw("SELECT MAX(id) AS id FROM embeddings").first()!.decode(column: "id", as: Int64.self)
            XCTAssertGreaterThan(stored, marks.lastEmbeddingID, "faces were stored after the snapshot")

            try await identity.load()
            XCTAssertEqual(identity.state.withLockedValue { $0.lastEmbeddingID }, stored)
            assertSame(profiles(identity), live, "restart from the snapshot")
            XCTAssertEqual(owners(identity), liveOwners, "owners of looks after a restart from the snapshot")

            try await service.services.database.sql.raw("DELETE FROM identity_snapshot_persons").run()
            try await service.services.database.sql.raw("DELETE FROM identity_snapshots").run()
            try await identity.load()
            assertSame(profiles(identity), live, "full load of every face")
            XCTAssertEqual(owners(identity), liveOwners, "owners of looks after a full load")

            let rewrote = try await identity.saveSnapshot()
            XCTAssertTrue(rewrote)
            let bumped = try await IdentityService.bumpGeneration(on: service.services.database.sql)
            let retired = try await IdentityLog.latestSnapshot(of: bumped, on: service.services.database.sql)
            XCTAssertNil(retired, "a snapshot of an older generation is not read")
        }
    }

    /// A snapshot written while an older one exists replaces it (rows included); an index with fewer faces
    /// behind than the minimum writes none.
    func testNewSnapshotReplacesTheOldOne() async throws {
        try await TestService.run(flavor) { service in
            let identity = service.services.identity
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            let skipped = try await identity.saveSnapshotIfBehind()
            XCTAssertFalse(skipped, "8 faces are far below the minimum")
            let first = try await identity.saveSnapshotIfBehind(minimumBehind: 1)
            XCTAssertTrue(first)
            let again = try await identity.saveSnapshotIfBehind(minimumBehind: 1)
            XCTAssertFalse(again, "nothing happened since the last snapshot")
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let second = try await identity.saveSnapshotIfBehind(minimumBehind: 1)
            XCTAssertTrue(second)
            let sql = service.services.database.sql
            let snapshots = try await sql.raw("SELECT id, person_count FROM identity_snapshots").all()
            XCTAssertEqual(snapshots.count, 1)
            let snapshotID = try snapshots[0].decode(column: "id", as: Int64.self)
            let rows = try await sql.raw("SELECT DISTINCT snapshot_id FROM identity_snapshot_persons").all()
                .map { try $0.decode(column: "snapshot_id", as: Int64.self) }
            XCTAssertEqual(rows, [snapshotID])
            XCTAssertEqual(try snapshots[0].decode(column: "person_count", as: Int.self), identity.personCount)
        }
    }

    // MARK: Helpers

    /// Every look's owner, by look id.
    private func owners(_ identity: IdentityService) -> [Int64: Int64] {
        identity.state.withLockedValue { state in
            Dictionary(uniqueKeysWithValues: state.index.lookIDs.map { ($0, state.index.owner(ofLook: $0)) })
        }
    }

    /// Every look's profile, by look id.
    private func profiles(_ identity: IdentityService) -> [Int64: PersonProfile] {
        identity.state.withLockedValue { state in
            Dictionary(uniqueKeysWithValues: state.index.lookIDs.map { ($0, state.index.profile(ofLook: $0)!) })
        }
    }

    /// Same persons with the same face counts, and sums equal up to float rounding of another summation order.
    private func assertSame(_ actual: [Int64: PersonProfile], _ expected: [Int64: PersonProfile], _ what: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.keys.sorted(), expected.keys.sorted(), what, file: file, line: line)
        for (person, profile) in expected {
            guard let other = actual[person] else { continue }
            XCTAssertEqual(other.count, profile.count, "\(what): faces of person \(person)", file: file, line: line)
            let difference = zip(other.sum, profile.sum).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(difference, 1e-4, "\(what): sum of person \(person)", file: file, line: line)
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class IdentitySnapshotTestsOnPostgres: IdentitySnapshotTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testIndexRestartsFromSnapshotAndCatchesUp() async throws { try await super.testIndexRestartsFromSnapshotAndCatchesUp() }
}
