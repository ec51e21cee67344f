import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import SQLKit
import Vapor
import XCTest

/// Every file accounted for: each entry of an ingested folder is queued (the content deciding the format) or listed
/// as not queued with its reason, through the API.
class IngestAccountingTests: DatabaseTestCase {
    /// The job status lists every entry that was not queued with its reason, the content decides the format, the
    /// counts add up (scanned = queued + skipped + not queued), and a re-ingest or a dry run accounts the same way.
    func testEveryEntryIsQueuedOrListedWithItsReason() async throws {
        let folder = try makeOddFolder()
        defer { folder.remove() }
        try await TestService.run(flavor, backgroundWork: false, tune: { $0.allowedRoots = [folder.root.path] }) { service in
            let jobID = try await service.ingest(folder.root, batchSize: 4)
            await service.services.ingest.waitForScan(jobID)
            let first = try await status(service, jobID)
            XCTAssertEqual(first.status, "SCANNED", first.lastError ?? "")
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: (first.notQueued ?? []).map { ($0.path, $0.reason) }), folder.notQueued)
            XCTAssertEqual(first.notQueued?.map(\.path), first.notQueued?.map(\.path).sorted(), "listed by path")
            XCTAssertEqual(first.notQueuedCount, folder.notQueued.count)
            XCTAssertEqual(first.rejected, folder.notQueued.count)
            XCTAssertEqual(first.queued, folder.photos.count)
            XCTAssertEqual(first.scanned, folder.photos.count + folder.notQueued.count)
            XCTAssertEqual(first.scanned, first.queued + first.skipped + first.notQueuedCount)
            let formats = try await service.services.database.sql.raw("SELECT path, format FROM photos").all().map {
                (try $0.decode(column: "path", as: String.self), try $0.decode(column: "format", as: String.self))
            }
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: formats), folder.photos, "the content decides the format")

            let again = try await service.ingest(folder.root, batchSize: 4)
            await service.services.ingest.waitForScan(again)
            let second = try await status(service, again)
            XCTAssertEqual([second.queued, second.skipped, second.notQueuedCount], [0, folder.photos.count, folder.notQueued.count])
            XCTAssertEqual(second.notQueued?.count, folder.notQueued.count)

            let dry = try await service.request(.POST, "/ingest-folder", json: IngestRequest(path: folder.root.path, batchSize: 3, dryRun: true))
            let dryID = try dry.decode(IngestAccepted.self).jobId
            await service.services.ingest.waitForScan(dryID)
            let preview = try await status(service, dryID)
            XCTAssertEqual(preview.scanned, preview.inserted + preview.skipped + preview.notQueuedCount)
            XCTAssertEqual(preview.notQueuedCount, folder.notQueued.count)
            let previewRows = try await storedRejections(service, dryID)
            XCTAssertEqual(previewRows, folder.notQueued.count)
        }
    }

    /// A job interrupted mid-scan resumes after its last batch: the entries it skips include the not-queued ones, no
    /// rejection is stored twice, and the counts still add up.
    func testResumedJobDoesNotDuplicateRejections() async throws {
        let folder = try makeOddFolder()
        defer { folder.remove() }
        try await TestService.run(flavor, backgroundWork: false, tune: { $0.allowedRoots = [folder.root.path] }) { service in
            let jobID = try await service.ingest(folder.root, batchSize: 3)
            await service.services.ingest.waitForScan(jobID)
            let complete = try await status(service, jobID)
            // Roll the job back to "crashed after batch 2": the rows and counters of later batches were never written.
            let entries = Array(DirectoryScanner(root: folder.root.path, allowedRoots: [folder.root.path]))
            let done = Set(entries.prefix(6).map(\.path))
            let doneRejected = folder.notQueued.keys.filter(done.contains).count
            let sql = service.services.database.sql
            try await sql.raw("DELETE FROM ingest_rejections WHERE job_id = \(bind: jobID) AND path NOT IN (\(binds: Array(done)))").run()
            try await sql.raw("""
                UPDATE ingest_jobs SET status = 'SCANNING', completed_batches = 2, scanned_count = 6, rejected_count = \(bind: doneRejected),
                    skipped_count = 0, inserted_count = \(bind: 6 - doneRejected), queued_count = \(bind: 6 - doneRejected), finished_at = NULL
                WHERE job_id = \(bind: jobID)
                """).run()
            try await sql.raw("DELETE FROM ingest_batches WHERE job_id = \(bind: jobID) AND batch_index >= 2").run()
            try await service.services.ingest.resumeInterruptedJobs()
            await service.services.ingest.waitForScan(jobID)
            let resumed = try await status(service, jobID)
            XCTAssertEqual(resumed.status, "SCANNED")
            XCTAssertEqual(resumed.scanned, complete.scanned)
            XCTAssertEqual(resumed.notQueuedCount, folder.notQueued.count)
            let stored = try await storedRejections(service, jobID)
            XCTAssertEqual(stored, folder.notQueued.count)
            XCTAssertEqual(resumed.batches?.map(\.batchIndex).first, 0)
            XCTAssertEqual(resumed.batches?.count, (entries.count + 2) / 3)
            XCTAssertEqual(resumed.scanned, resumed.queued + resumed.skipped + resumed.notQueuedCount)
        }
    }

    /// GET /ingest-jobs/{id}/not-queued pages every not-queued entry by path; bad paging values are refused with a
    /// reason; the status carries the first 100.
    func testNotQueuedEntriesArePagedByPath() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("many-notes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        for index in 0..<105 { try Data("note \(index)\n".utf8).write(to: root.appendingPathComponent(String(format: "note-%03d.txt", index))) }
        try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama.jpg"), to: root.appendingPathComponent("obama.jpg"))
        try await TestService.run(flavor, backgroundWork: false) { service in
            let jobID = try await service.ingest(root, batchSize: 50)
            await service.services.ingest.waitForScan(jobID)
            let job = try await status(service, jobID)
            XCTAssertEqual(job.notQueuedCount, 105)
            XCTAssertEqual(job.notQueued?.count, 100, "the status carries the first 100")
            var collected: [NotQueuedFile] = []
            var after: String?
            var pages = 0
            repeat {
                var query = "/ingest-jobs/\(jobID)/not-queued?limit=40"
                if let after { query += "&after=" + after.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }
                let page = try await service.request(.GET, query).decode(NotQueuedPage.self)
                XCTAssertLessThanOrEqual(page.notQueued.count, 40)
                collected += page.notQueued
                after = page.nextAfter
                pages += 1
            } while after != nil && pages < 10
            XCTAssertEqual(pages, 3)
            XCTAssertEqual(collected.count, 105)
            XCTAssertEqual(Set(collected.map(\.path)).count, 105, "no entry twice")
            XCTAssertEqual(collected.map(\.path), collected.map(\.path).sorted())
            XCTAssertEqual(Set(collected.map(\.reason)), ["not a supported image (content is text)"])
            XCTAssertEqual(Array(collected.prefix(100)), job.notQueued)

            let whole = try await service.request(.GET, "/ingest-jobs/\(jobID)/not-queued")
            XCTAssertTrue(String(decoding: whole.body, as: UTF8.self).contains("\"next_after\":null"), "the last page says so")
            XCTAssertEqual(try whole.decode(NotQueuedPage.self).notQueued.count, 105, "default limit 500")
            for bad in ["0", "1001", "abc", "-5"] {
                let reply = try await service.request(.GET, "/ingest-jobs/\(jobID)/not-queued?limit=\(bad)")
                XCTAssertEqual(reply.status, .badRequest, bad)
                XCTAssertTrue(reply.reason.contains("limit must be an integer from 1 to 1000"), reply.reason)
            }
            let unknown = try await service.request(.GET, "/ingest-jobs/no-such-job/not-queued")
            XCTAssertEqual(unknown.status, .notFound)
            XCTAssertTrue(unknown.reason.contains("no-such-job"), unknown.reason)
        }
    }

    /// POST /classify-photo by path decides by content like a folder ingest and refuses with the same reasons (400).
    func testClassifyPhotoByPathGivesTheScannersReasons() async throws {
        let folder = try makeOddFolder()
        defer { folder.remove() }
        try await TestService.run(flavor, backgroundWork: false, tune: { $0.allowedRoots = [folder.root.path] }) { service in
            for (path, reason) in folder.notQueued where !path.contains("\\x") {
                let reply = try await service.request(.POST, "/classify-photo", json: ClassifyRequest(photoID: nil, path: path))
                XCTAssertEqual(reply.status, .badRequest, path)
                XCTAssertEqual(reply.reason, "\(path): \(reason)")
            }
            let folderReply = try await service.request(.POST, "/classify-photo", json: ClassifyRequest(photoID: nil, path: folder.root.path + "/sub"))
            XCTAssertEqual(folderReply.status, .badRequest)
            XCTAssertTrue(folderReply.reason.hasSuffix("a folder, not a file"), folderReply.reason)
            let misnamed = folder.root.path + "/obama1 really a jpeg.png"
            let reply = try await service.request(.POST, "/classify-photo", json: ClassifyRequest(photoID: nil, path: misnamed))
            XCTAssertEqual(reply.status, .ok, reply.reason)
            XCTAssertEqual(try reply.decode(PhotoView.self).status, .processed)
            let format = try await service.services.database.sql.raw("SELECT format FROM photos WHERE path = \(bind: misnamed)")
                .first()?.decode(column: "format", as: String.self)
            XCTAssertEqual(format, "jpeg")
        }
    }

    // MARK: Helpers

    /// A folder of odd files: the photos it holds (by name → format from content) and what every other entry gets.
    struct OddFolder {
        let root: URL
        let outside: URL
        let photos: [String: String]
        let notQueued: [String: String]

        func remove() {
            try? FileManager.default.removeItem(at: root)
            try? FileManager.default.removeItem(at: outside)
        }
    }

    func makeOddFolder() throws -> OddFolder {
        let base = FileManager.default.temporaryDirectory
        let root = base.appendingPathComponent("odd-files-\(UUID().uuidString)")
        let outside = base.appendingPathComponent("odd-outside-\(UUID().uuidString)")
        let files = FileManager.default
        try files.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try files.createDirectory(at: outside, withIntermediateDirectories: true)
        func copy(_ face: String, as name: String) throws {
            try files.copyItem(at: URL.faces(face), to: root.appendingPathComponent(name))
        }
        func write(_ name: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: root.appendingPathComponent(name)) }
        func link(_ name: String, to destination: String) throws {
            try files.createSymbolicLink(atPath: root.appendingPathComponent(name).path, withDestinationPath: destination)
        }
        try copy("face_recognition_examples/obama/obama.jpg", as: "obama.jpg")
        try copy("face_recognition_examples/biden/biden.jpg", as: "sub/biden.jpg")
        try copy("face_recognition_examples/obama/obama1.jpg", as: "obama1 really a jpeg.png")
        try write("webp named.jpg", Array("RIFF".utf8) + [0x24, 0, 0, 0] + Array("WEBPVP8 ".utf8) + [0, 0, 0, 0])
        try write("empty.jpg", [])
        try write("notes.txt", Array("not a photo\n".utf8))
        try write("fake.heic", Array("a text file named like a HEIC\n".utf8))
        try write("fake.nef", Array("a text file named like a NEF\n".utf8))
        try write("clip.mp4", [0, 0, 0, 0x18] + Array("ftypmp42".utf8) + [0, 0, 0, 0] + Array("mp42isom".utf8))
        try write(".hidden.jpg", [0xFF, 0xD8, 0xFF, 0xE0])
        XCTAssertEqual(mkfifo(root.appendingPathComponent("pipe.jpg").path, 0o644), 0)
        try link("loop-a.jpg", to: root.appendingPathComponent("loop-b.jpg").path)
        try link("loop-b.jpg", to: root.appendingPathComponent("loop-a.jpg").path)
        try link("gone.jpg", to: root.appendingPathComponent("nothing-here.jpg").path)
        try link("sub-link", to: root.appendingPathComponent("sub").path)
        try files.copyItem(at: URL.faces("face_recognition_examples/obama/obama2.jpg"), to: outside.appendingPathComponent("secret.jpg"))
        try link("escape.jpg", to: outside.appendingPathComponent("secret.jpg").path)
        let badName = (Array(root.path.utf8) + Array("/caf".utf8) + [0xE9] + Array(".jpg".utf8) + [0]).map { CChar(bitPattern: $0) }
        let descriptor = open(badName, O_CREAT | O_WRONLY, 0o644)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        close(descriptor)
        let path = { (name: String) in root.path + "/" + name }
        return OddFolder(
            root: root, outside: outside,
            photos: [path("obama.jpg"): "jpeg", path("sub/biden.jpg"): "jpeg", path("obama1 really a jpeg.png"): "jpeg",
                     path("webp named.jpg"): "webp"],
            notQueued: [
                path("empty.jpg"): "empty file (0 bytes)",
                path("notes.txt"): "not a supported image (content is text)",
                path("fake.heic"): "extension says HEIF but the content is not an image (content is text)",
                path("fake.nef"): "extension says NEF but the content is not an image (content is text)",
                path("clip.mp4"): "video, not analysed",
                path("pipe.jpg"): "not a regular file (FIFO)",
                path("loop-a.jpg"): "symlink loop",
                path("loop-b.jpg"): "symlink loop",
                path("gone.jpg"): "broken symlink",
                path("sub-link"): "symlink to a directory (not followed)",
                path("escape.jpg"): "symlink target is outside the allowed roots",
                path("caf\\xE9.jpg"): "file name is not valid UTF-8 (rename it)",
            ])
    }

    func status(_ service: TestService, _ jobID: String) async throws -> IngestStatus {
        try await service.request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
    }

    func storedRejections(_ service: TestService, _ jobID: String) async throws -> Int {
        try await service.services.database.sql.raw("SELECT COUNT(*) AS n FROM ingest_rejections WHERE job_id = \(bind: jobID)")
            .first()!.decode(column: "n", as: Int.self)
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class IngestAccountingTestsOnPostgres: IngestAccountingTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testEveryEntryIsQueuedOrListedWithItsReason() async throws { try await super.testEveryEntryIsQueuedOrListedWithItsReason() }
}
