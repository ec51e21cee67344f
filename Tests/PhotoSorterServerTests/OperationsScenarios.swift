import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// Operational behaviours: resume, manual status changes, synchronous classification, dump, health.
enum OperationsScenarios {
    /// A job left SCANNING by a crash resumes after its last completed batch instead of starting over.
    static func interruptedIngestResumesFromLastCompletedBatch(_ flavor: DatabaseFlavor) async throws {
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

    /// PUT /photo/update-status: FAILED counts a retry and records the error; READY requeues at once.
    static func updateStatusFollowsTheSpec(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let firstPhoto = try await service.photos().first
            let id = try XCTUnwrap(firstPhoto?.photoID)
            let failed = try await service.request(.PUT, "/photo/update-status", json: StatusUpdate(photoID: id, status: .failed, error: "disk unplugged"))
            XCTAssertEqual(failed.status, .ok, failed.reason)
            let afterFailure = try await service.photo(id)
            XCTAssertEqual(afterFailure.status, .failed)
            XCTAssertEqual(afterFailure.retryCount, 1)
            XCTAssertEqual(afterFailure.lastError, "disk unplugged")
            let ready = try await service.request(.PUT, "/photo/update-status", json: StatusUpdate(photoID: id, status: .ready, error: nil))
            XCTAssertEqual(try ready.decode(PhotoView.self).status, .ready)
            let claimed = try await service.services.queue.claim(limit: 10)
            XCTAssertTrue(claimed.contains { $0.photoID == id })
            let unknown = try await service.request(.PUT, "/photo/update-status", json: StatusUpdate(photoID: 9999, status: .ready, error: nil))
            XCTAssertEqual(unknown.status, .notFound)
            let badStatus = try await service.request(.PUT, "/photo/update-status", body: Data(#"{"photo_id": 1, "status": "DONE"}"#.utf8))
            XCTAssertEqual(badStatus.status, .badRequest)
        }
    }

    /// POST /classify-photo analyses one file synchronously and stores it like a callback would.
    static func classifyPhotoIsSynchronous(_ flavor: DatabaseFlavor) async throws {
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

    /// Two instances starting at the same moment on an empty PostgreSQL database both come up on one schema (the
    /// one that loses the race to create a table waits and finds the other's migrations).
    static func instancesStartingTogetherShareOneSchema() async throws {
        guard let url = ProcessInfo.processInfo.environment["PHOTO_SORTER_TEST_POSTGRES_URL"] else {
            throw XCTSkip("PHOTO_SORTER_TEST_POSTGRES_URL not set; scripts/test.sh starts a PostgreSQL server")
        }
        try await TestService.resetPostgres(url)
        let apps = try await withThrowingTaskGroup(of: Application.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    var config = ServiceConfig()
                    config.databaseURL = url
                    let app = try await Application.make(Environment(name: "testing", arguments: ["photo-sorter-tests", "serve"]))
                    app.logger.logLevel = .error
                    do {
                        try await configure(app, config: config, backgroundWork: false)
                    } catch {
                        try? await app.asyncShutdown()
                        throw error
                    }
                    return app
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for app in apps {
            let migrations = try await (app.db as! any SQLDatabase).raw("SELECT COUNT(*) AS n FROM _fluent_migrations").first()!
                .decode(column: "n", as: Int.self)
            XCTAssertEqual(migrations, schemaMigrations.count)
            try await app.asyncShutdown()
        }
    }

    /// The person dump serves what changed since a sequence number: after a listing, only persons whose
    /// representative changed (new faces, a merge) come back, absorbed persons as `removed`; an unknown epoch
    /// (the instance reloaded) answers `reset`.
    static func personDumpServesChangesSinceASequence(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            let listing = try await service.request(.GET, "/person-dump?since_id=0").decode(PersonDump.self)
            let obama = try XCTUnwrap(listing.persons.first).personID
            let none = try await service.request(.GET, "/person-dump?since_seq=\(listing.seq)&epoch=\(listing.epoch)").decode(PersonDump.self)
            XCTAssertEqual(none.persons.count, 0, "nothing changed since the listing")
            XCTAssertFalse(none.reset)

            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let grown = try await service.request(.GET, "/person-dump?since_seq=\(none.seq)&epoch=\(listing.epoch)").decode(PersonDump.self)
            let biden = try XCTUnwrap(grown.persons.first { $0.personID != obama }).personID
            XCTAssertEqual(grown.persons.map(\.personID), [biden], "only the new person changed")

            _ = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [obama, biden], into: obama)).decode(MergeResult.self)
            let merged = try await service.request(.GET, "/person-dump?since_seq=\(grown.seq)&epoch=\(listing.epoch)").decode(PersonDump.self)
            XCTAssertEqual(merged.persons.map(\.personID), [obama])
            XCTAssertEqual(merged.removed, [biden])
            XCTAssertGreaterThan(merged.seq, grown.seq)

            let stale = try await service.request(.GET, "/person-dump?since_seq=0&epoch=another").decode(PersonDump.self)
            XCTAssertTrue(stale.reset)
            XCTAssertEqual(stale.epoch, listing.epoch)
            let noEpoch = try await service.request(.GET, "/person-dump?since_seq=0")
            XCTAssertEqual(noEpoch.status, .unprocessableEntity)
        }
    }

    /// GET /person-dump needs the shared secret, pages by since_id and compresses when asked.
    static func personDumpIsProtectedAndPaged(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, backgroundWork: false, tune: { $0.sharedSecret = "s3cret" }) { service in
            // The callback needs the secret too; results are fed directly with the header.
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("face_recognition_examples/kit_harington")))
            let anonymous = try await service.request(.GET, "/person-dump")
            XCTAssertEqual(anonymous.status, .unauthorized)
            let secret = [("X-Photo-Sorter-Secret", "s3cret")]
            let photos = try await service.photos()
            for (index, photo) in photos.enumerated() {
                let faces = EmbeddingFixture.shared.photo("face_recognition_examples/kit_harington/" + photo.filename)!.faces
                let other = EmbeddingFixture.shared.photos(inSet: "lfw_small")[index * 9].faces
                let reply = try await service.request(.POST, "/callback/photo-processed",
                                                      body: Scenarios.callback(photoID: photo.photoID, callbackID: "d\(index)", faces: faces + other),
                                                      headers: secret)
                XCTAssertEqual(reply.status, .ok, reply.reason)
            }
            // Not gzipped even when asked: near-random vector bytes barely compress.
            let first = try await service.request(.GET, "/person-dump?since_id=0&limit=2", headers: secret + [("Accept-Encoding", "gzip")])
            XCTAssertEqual(first.status, .ok)
            XCTAssertNil(first.headers.first(name: "Content-Encoding"))
            let plain = try await service.request(.GET, "/person-dump?since_id=0&limit=2", headers: secret).decode(PersonDump.self)
            XCTAssertEqual(plain.embeddingEncoding, .f32)
            // Compact: float16, half the bytes, the same direction to a thousandth.
            let half = try await service.request(.GET, "/person-dump?since_id=0&limit=2&encoding=f16", headers: secret).decode(PersonDump.self)
            XCTAssertEqual(half.embeddingEncoding, .f16)
            XCTAssertEqual(half.persons.map(\.personID), plain.persons.map(\.personID))
            for (compact, exact) in zip(half.persons, plain.persons) {
                let bytes = try XCTUnwrap(Data(base64Encoded: compact.representativeEmbedding))
                XCTAssertEqual(bytes.count, 128 * 2)
                let values = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float16.self)).map(Float.init) }
                let similarity = try Embedding(normalising: values).similarity(to: try EmbeddingCodec.decode(base64: exact.representativeEmbedding))
                XCTAssertGreaterThan(similarity, 0.9999)
            }
            let badEncoding = try await service.request(.GET, "/person-dump?encoding=f8", headers: secret)
            XCTAssertEqual(badEncoding.status, .unprocessableEntity)
            XCTAssertEqual(plain.persons.count, 2)
            guard plain.persons.count == 2 else { return }
            XCTAssertTrue(plain.hasMore)
            let rest = try await service.request(.GET, "/person-dump?since_id=\(plain.nextSinceID)&limit=100", headers: secret).decode(PersonDump.self)
            XCTAssertFalse(rest.hasMore)
            XCTAssertTrue(rest.persons.allSatisfy { $0.personID > plain.nextSinceID })
            let total = plain.persons.count + rest.persons.count
            XCTAssertEqual(total, service.services.identity.personCount)
            let embedding = try EmbeddingCodec.decode(base64: plain.persons[0].representativeEmbedding)
            XCTAssertEqual(embedding.values.count, 128)
            let withoutSecret = try await service.request(.GET, "/person/\(plain.persons[0].personID)?include_embedding=true")
            XCTAssertEqual(withoutSecret.status, .unauthorized)
            let withSecret = try await service.request(.GET, "/person/\(plain.persons[0].personID)?include_embedding=true", headers: secret)
            XCTAssertNotNil(try withSecret.decode(PersonView.self).representativeEmbedding)
        }
    }

    /// GET /health reports photo counts; GET /metrics exposes Prometheus counters.
    static func healthAndMetricsReport(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/rose_leslie")))
            let health = try await service.request(.GET, "/health")
            XCTAssertEqual(health.status, .ok)
            let body = try JSONSerialization.jsonObject(with: health.body) as! [String: Any]
            XCTAssertEqual((body["photos"] as? [String: Int])?["PROCESSED"], 2)
            let metrics = String(decoding: try await service.request(.GET, "/metrics").body, as: UTF8.self)
            XCTAssertTrue(metrics.contains("photo_sorter_faces_total"), metrics)
            XCTAssertTrue(metrics.contains("photo_sorter_photos_dispatched_total"))
        }
    }
}
