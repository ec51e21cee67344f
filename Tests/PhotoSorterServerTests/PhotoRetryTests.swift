import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// A photo whose analysis fails or is lost is retried until it is processed, and an ML service that is busy, down
/// or restarted costs the photos no retry; PUT /photo/update-status sets a status by hand the same way.
class PhotoRetryTests: DatabaseTestCase {
    /// ML answers 500 first: FAILED with retry_count 1, then the retry scheduler requeues it and it completes.
    func testFailedPhotoIsRetriedUntilProcessed() async throws {
        try await TestService.run(flavor, ml: .init(failFirst: 2), tune: { $0.workerConcurrency = 1 }) { service in
            let folder = URL.faces("face_recognition_examples/biden")
            let status = try await service.waitUntilDone(try await service.ingest(folder))
            XCTAssertEqual(status.processed, 2)
            let photos = try await service.photos()
            XCTAssertEqual(photos.map(\.retryCount).reduce(0, +), 2, "two failed attempts were counted")
            XCTAssertTrue(photos.allSatisfy { $0.status == .processed && $0.lastError == nil })
        }
    }

    /// A dispatch whose result never arrives is reset after the processing timeout and then retried.
    func testStaleProcessingIsResetAndRetried() async throws {
        try await TestService.run(flavor, ml: .init(dropFirst: 1), tune: {
            $0.processingTimeoutSeconds = 1
            $0.workerConcurrency = 1
        }) { service in
            let status = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/rose_leslie")))
            XCTAssertEqual(status.processed, 2)
            let retried = try await service.photos().filter { $0.retryCount == 1 }
            XCTAssertEqual(retried.count, 1)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 3, "the lost photo was sent again")
        }
    }

    /// 429 from the ML service is back-off, not failure: no retry is counted.
    func testBusyMLServiceIsNotAFailure() async throws {
        try await TestService.run(flavor, ml: .init(busyFirst: 3)) { service in
            let status = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/kit_harington")))
            XCTAssertEqual(status.processed, 3)
            let photos = try await service.photos()
            XCTAssertTrue(photos.allSatisfy { $0.retryCount == 0 })
        }
    }

    /// With several ML services configured, one that is down costs nothing: its photos go to the other at once
    /// (no photo fails, none waits for a retry), and the dead one is backed off.
    func testDeadMLServiceIsSkippedForALiveOne() async throws {
        let dead = "http://127.0.0.1:9"
        try await TestService.run(flavor, tune: { $0.mlServiceURLs.insert(dead, at: 0) }) { service in
            let status = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            XCTAssertEqual(status.failed, 0)
            XCTAssertEqual(status.processed, status.inserted)
            let photos = try await service.photos()
            XCTAssertTrue(photos.allSatisfy { $0.retryCount == 0 })
            let pool = service.services.ml.servicesStatus
            XCTAssertGreaterThan(pool.first { $0.url == dead }?.failuresInARow ?? 0, 0)
        }
    }

    /// A photo handed over before every ML service (re)started was lost with the process that held it: the
    /// stale-PROCESSING scheduler marks it FAILED for a retry now, not after the processing timeout. A photo claimed
    /// within the hand-over grace before the restart, and any photo while the ML services' start is unknown, waits.
    func testPhotosHandedToAnMLServiceThatRestartedSinceAreRetriedAtOnce() async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let ids = try await service.photos().map(\.photoID).sorted()
            XCTAssertEqual(ids.count, 2)
            let now = nowMs(), restartedAt = now - 20_000
            for (id, claimedAt) in zip(ids, [now - 60_000, restartedAt - 1_000]) {
                try await service.services.database.sql.raw("""
                    UPDATE photos SET status = 'PROCESSING', processing_started_at = \(bind: claimedAt) WHERE id = \(bind: id)
                    """).run()
            }
            func scheduler(_ started: Int64?) -> StaleProcessingScheduler {
                StaleProcessingScheduler(database: service.services.database, statuses: service.services.statuses,
                                         timeoutSeconds: 600, mlStartedAtMs: { started }, handOverGraceMs: 5_000,
                                         logger: service.app.logger)
            }
            let unknown = try await scheduler(nil).runOnce()
            XCTAssertEqual(unknown, [], "nothing is known about the ML services: only the timeout applies")
            let marked = try await scheduler(restartedAt).runOnce()
            XCTAssertEqual(marked, [ids[0]], "only the photo handed over before the restart, beyond the grace")
            let rows = try await service.services.database.sql.raw("""
                SELECT id, status, last_error, next_attempt_at FROM photos ORDER BY id
                """).all()
            XCTAssertEqual(try rows.map { try $0.decode(column: "status", as: String.self) }, ["FAILED", "PROCESSING"])
            XCTAssertEqual(try rows[0].decode(column: "last_error", as: String?.self),
                           "the ML service restarted after the photo was handed to it (its result was lost)")
            XCTAssertNotNil(try rows[0].decode(column: "next_attempt_at", as: Int64?.self), "a retry is scheduled")
        }
    }

    /// An ML service that is down (nothing listens on its port) is not the photos' failure: with one retry allowed
    /// and 0.2 s of backoff, photos would have used up their retries within a second; they stay READY instead,
    /// retry_count 0, for as long as it is down.
    func testPhotosWaitReadyWithoutUsingRetriesWhileNoMLServiceAnswers() async throws {
        try await TestService.run(flavor, tune: { config in
            config.mlServiceURLs = ["http://127.0.0.1:9"]  // the discard port: nothing listens
            config.maxRetries = 1
        }) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            try await Task.sleep(for: .seconds(4))
            let rows = try await service.services.database.sql.raw("SELECT status, retry_count, last_error FROM photos").all()
            XCTAssertEqual(rows.count, 2)
            for row in rows {
                // READY, or PROCESSING for the instant between a claim and its requeue.
                XCTAssertTrue(["READY", "PROCESSING"].contains(try row.decode(column: "status", as: String.self)))
                XCTAssertEqual(try row.decode(column: "retry_count", as: Int.self), 0)
                XCTAssertNil(try row.decode(column: "last_error", as: String?.self))
            }
        }
    }

    /// PUT /photo/update-status: FAILED counts a retry and records the error; READY requeues at once.
    func testUpdateStatusCountsAFailureAndRequeues() async throws {
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
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class PhotoRetryTestsOnPostgres: PhotoRetryTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testFailedPhotoIsRetriedUntilProcessed() async throws { try await super.testFailedPhotoIsRetriedUntilProcessed() }
}
