import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// Ingesting a folder again, or resuming an interrupted job, does only the work that is left: new and changed files
/// are processed (a changed one under its old photo id), unchanged ones are skipped unread, and every id is kept.
class ReingestTests: DatabaseTestCase {
    /// Re-ingesting a folder that overlaps an earlier one inserts only new files and keeps every id.
    func testReingestOfOverlappingFolderKeepsIDs() async throws {
        try await TestService.run(flavor) { service in
            let first = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            let before = Dictionary(uniqueKeysWithValues: try await service.photos().map { ($0.path, $0) })
            let second = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            XCTAssertEqual(second.skipped, first.scanned)
            XCTAssertEqual(second.inserted, second.scanned - first.scanned)
            let after = try await service.photos()
            for photo in after where before[photo.path] != nil {
                XCTAssertEqual(photo.photoID, before[photo.path]!.photoID)
                XCTAssertEqual(photo.personIDs, before[photo.path]!.personIDs)
            }
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, after.count, "each photo was processed exactly once")
            let third = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            XCTAssertEqual(third.inserted, 0)
            XCTAssertEqual(third.queued, 0)
            XCTAssertEqual(third.personsCreated, 0)
            XCTAssertEqual(third.personsMatched, 0)
            XCTAssertGreaterThan(second.personsCreated, 0)
        }
    }

    /// A file replaced by a different picture (size/mtime and hash changed) is processed again under its
    /// photo id; its old faces leave their person, and nothing else is reprocessed.
    func testChangedFileIsReprocessedUnderItsID() async throws {
        try await TestService.run(flavor) { service in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("changed-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let obama = URL.faces("face_recognition_examples/obama")
            for name in ["obama.jpg", "obama2.jpg", "obama3.jpg"] {
                try FileManager.default.copyItem(at: obama.appendingPathComponent(name), to: folder.appendingPathComponent(name))
            }
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            let before = try await service.photos()
            let obamaID = try XCTUnwrap(before.first?.personIDs.first)
            XCTAssertTrue(before.allSatisfy { $0.personIDs == [obamaID] }, "\(before)")
            let replaced = folder.appendingPathComponent("obama3.jpg")
            try FileManager.default.removeItem(at: replaced)
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/biden/biden.jpg"), to: replaced)
            let second = try await service.waitUntilDone(try await service.ingest(folder))
            XCTAssertEqual(second.inserted, 1)
            XCTAssertEqual(second.skipped, 2)
            let after = try await service.photos()
            XCTAssertEqual(after.map(\.photoID), before.map(\.photoID))
            let changed = try XCTUnwrap(after.first { $0.path == replaced.path })
            XCTAssertEqual(changed.status, .processed)
            XCTAssertNotEqual(changed.personIDs, [obamaID])
            let person = try await service.request(.GET, "/person/\(obamaID)").decode(PersonView.self)
            XCTAssertEqual(person.photoCount, 2)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 4)
        }
    }

    /// A job left SCANNING by a crash resumes after its last completed batch instead of starting over.
    func testInterruptedIngestResumesFromLastCompletedBatch() async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            let folder = URL.faces("face_recognition_examples/obama")
            let files = DirectoryScanner(root: folder.path).map(\.path)
            XCTAssertEqual(files.count, 8)
            try await service.services.database.sql.raw("""
                INSERT INTO ingest_jobs (job_id, path, recursive, batch_size, dry_run, status, scanned_count, inserted_count,
                    skipped_count, queued_count, rejected_count, completed_batches, created_at)
                VALUES ('crashed-job', \(bind: folder.path), \(bind: true), 3, \(bind: false), 'SCANNING', 6, 6, 0, 6, 0, 2, 0)
                """).run()
            try await service.services.ingest.resumeInterruptedJobs()
            await service.services.ingest.waitForScan("crashed-job")
            let status = try await service.request(.GET, "/ingest-status/crashed-job").decode(IngestStatus.self)
            XCTAssertEqual(status.scanned, 8)
            XCTAssertEqual(status.status, "SCANNED")
            XCTAssertEqual(status.batches?.map(\.batchIndex), [2])
            let inserted = try await service.photos().map(\.path)
            XCTAssertEqual(inserted, Array(files.suffix(2)), "only the files after batch 2 were ingested on resume")
        }
    }

    /// An ingest of more files than one transaction takes keeps one `ingest_batches` row and one map row per
    /// photo of every batch; a re-scan takes a file with the same size and mtime as unchanged without reading it.
    func testGroupedCommitsKeepEveryBatchAndSkipUnchangedFilesUnread() async throws {
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
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class ReingestTestsOnPostgres: ReingestTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testReingestOfOverlappingFolderKeepsIDs() async throws { try await super.testReingestOfOverlappingFolderKeepsIDs() }
}
