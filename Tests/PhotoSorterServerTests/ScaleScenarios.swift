import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// What keeps a large library fast stays correct: index snapshots and grouped ingest commits (issue 12).
enum ScaleScenarios {
    /// A restart from a snapshot, after faces were added, moved to a new person and removed with a changed file
    /// since it was written, gives the index a full load of every face gives, and the one the running service
    /// held; a bulk change (new generation) retires the snapshot.
    static func indexRestartsFromSnapshotAndCatchesUp(_ flavor: DatabaseFlavor) async throws {
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
            let wrote = try await identity.saveSnapshot()
            XCTAssertTrue(wrote)
            let generation = try await IdentityService.generation(on: service.services.database.sql)
            let snapshot = try await identity.latestSnapshot(of: generation, on: service.services.database.sql)
            let marks = try XCTUnwrap(snapshot)

            // After the snapshot: new faces, a face moved to a new person, a changed file's faces removed.
            let photos = try await service.photos()
            let person = try XCTUnwrap(photos.first?.personIDs.first)
            let moved = try await PeopleScenarios.faces(of: person, service)[0]
            let move = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [moved.faceID], toPersonID: nil))
            XCTAssertEqual(move.status, .ok, move.reason)
            let replaced = folder.appendingPathComponent("obama/obama2.jpg")
            try FileManager.default.removeItem(at: replaced)
            try FileManager.default.copyItem(at: examples.appendingPathComponent("biden/biden.jpg"), to: replaced)
            try FileManager.default.copyItem(at: examples.appendingPathComponent("kit_harington"), to: folder.appendingPathComponent("kit"))
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            let live = profiles(identity)
            let stored = try await service.services.database.sql.raw("SELECT MAX(id) AS id FROM embeddings").first()!.decode(column: "id", as: Int64.self)
            XCTAssertGreaterThan(stored, marks.lastEmbeddingID, "faces were stored after the snapshot")

            try await identity.load()
            XCTAssertEqual(identity.state.withLockedValue { $0.lastEmbeddingID }, stored)
            assertSame(profiles(identity), live, "restart from the snapshot")

            try await service.services.database.sql.raw("DELETE FROM identity_snapshot_persons").run()
            try await service.services.database.sql.raw("DELETE FROM identity_snapshots").run()
            try await identity.load()
            assertSame(profiles(identity), live, "full load of every face")

            let rewrote = try await identity.saveSnapshot()
            XCTAssertTrue(rewrote)
            let bumped = try await IdentityService.bumpGeneration(on: service.services.database.sql)
            let retired = try await identity.latestSnapshot(of: bumped, on: service.services.database.sql)
            XCTAssertNil(retired, "a snapshot of an older generation is not read")
        }
    }

    /// A snapshot written while an older one exists replaces it (rows included); an index with fewer faces
    /// behind than the minimum writes none.
    static func newSnapshotReplacesTheOldOne(_ flavor: DatabaseFlavor) async throws {
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

    /// An ingest of more files than one transaction takes keeps one `ingest_batches` row and one map row per
    /// photo of every batch; a re-scan takes a file with the same size and mtime as unchanged without reading it.
    static func groupedCommitsKeepEveryBatchAndSkipUnchangedFilesUnread(_ flavor: DatabaseFlavor) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("grouped-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let jpeg = try Data(contentsOf: URL.faces("face_recognition_examples/obama/obama.jpg"))
        let count = IngestService.entriesPerTransaction + 130
        for n in 0..<count {
            // Distinct content per file: the number is appended after the image data.
            try (jpeg + Data("\(n)".utf8)).write(to: folder.appendingPathComponent(String(format: "p%05d.jpg", n)))
        }
        try await TestService.run(flavor, backgroundWork: false) { service in
            let jobID = try await service.ingest(folder, batchSize: 50)
            await service.services.ingest.waitForScan(jobID)
            let status = try await service.request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
            XCTAssertEqual(status.scanned, count)
            XCTAssertEqual(status.inserted, count)
            let sql = service.services.database.sql
            let batches = try await sql.raw("SELECT batch_index, photo_count FROM ingest_batches WHERE job_id = \(bind: jobID) ORDER BY batch_index").all()
            XCTAssertEqual(try batches.map { try $0.decode(column: "batch_index", as: Int.self) }, Array(0..<(count + 49) / 50))
            XCTAssertEqual(try batches.map { try $0.decode(column: "photo_count", as: Int.self) }.reduce(0, +), count)
            let mapped = try await sql.raw("SELECT COUNT(*) AS n FROM photo_ingest_map WHERE job_id = \(bind: jobID)").first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(mapped, count)
            let job = try await sql.raw("SELECT completed_batches FROM ingest_jobs WHERE job_id = \(bind: jobID)").first()!
            XCTAssertEqual(try job.decode(column: "completed_batches", as: Int.self), batches.count)

            // Same size and mtime, other bytes: unchanged for a re-scan, which does not open it.
            let rewritten = folder.appendingPathComponent("p00007.jpg")
            let modified = try FileManager.default.attributesOfItem(atPath: rewritten.path)[.modificationDate] as! Date
            var bytes = try Data(contentsOf: rewritten)
            bytes[bytes.count - 1] = UInt8(ascii: "x")
            try bytes.write(to: rewritten)
            try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: rewritten.path)
            // A changed size is read, and its other content re-queues it.
            try (jpeg + Data("grown".utf8)).write(to: folder.appendingPathComponent("p00008.jpg"))
            let second = try await service.ingest(folder, batchSize: 50)
            await service.services.ingest.waitForScan(second)
            let rescan = try await service.request(.GET, "/ingest-status/\(second)").decode(IngestStatus.self)
            XCTAssertEqual(rescan.scanned, count)
            XCTAssertEqual(rescan.inserted, 1, "only the file whose size changed")
            XCTAssertEqual(rescan.skipped, count - 1)
            let remapped = try await sql.raw("SELECT COUNT(*) AS n FROM photo_ingest_map WHERE job_id = \(bind: second)").first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(remapped, count, "every photo of the folder is mapped to the re-scan's batches")
        }
    }

    /// The library is "current" after a re-cluster until a face is stored, moved or confirmed: what lets `sort`
    /// skip a closing re-cluster that would change nothing.
    static func reclusterIsCurrentUntilTheLibraryChanges(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            let recluster = service.services.recluster
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            var current = try await recluster.isCurrent()
            XCTAssertFalse(current, "never re-clustered")
            _ = try await recluster.run()
            current = try await recluster.isCurrent()
            XCTAssertTrue(current)

            let photos = try await service.photos()
            let person = try XCTUnwrap(photos.first?.personIDs.first)
            let face = try await PeopleScenarios.faces(of: person, service)[0]
            let move = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [face.faceID], toPersonID: nil))
            XCTAssertEqual(move.status, .ok, move.reason)
            current = try await recluster.isCurrent()
            XCTAssertFalse(current, "a correction since")
            _ = try await recluster.run()
            current = try await recluster.isCurrent()
            XCTAssertTrue(current)

            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            current = try await recluster.isCurrent()
            XCTAssertFalse(current, "new faces since")
        }
    }

    // MARK: Helpers

    private static func profiles(_ identity: IdentityService) -> [Int64: PersonProfile] {
        identity.state.withLockedValue { state in
            Dictionary(uniqueKeysWithValues: state.index.personIDs.map { ($0, state.index.profiles[$0]!) })
        }
    }

    /// Same persons with the same face counts, and sums equal up to float rounding of another summation order.
    private static func assertSame(_ actual: [Int64: PersonProfile], _ expected: [Int64: PersonProfile], _ what: String,
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
