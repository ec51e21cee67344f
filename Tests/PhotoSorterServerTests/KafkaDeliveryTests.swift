import Foundation
@testable import PhotoSorterServer
import XCTest

/// What the Kafka work queue delivers when the broker redelivers a message, stops mid-ingest or is not up yet when
/// the service starts: every photo reaches the ML service exactly once. Against a real broker (Tansu; see
/// `KafkaTestBroker`), on SQLite only: the database plays no part in it.
final class KafkaDeliveryTests: XCTestCase {
    /// A second message for a photo already PROCESSED (what a redelivery after a rebalance or a crash before the
    /// offset commit looks like to the consumer) is consumed, skipped, and never reaches the ML service.
    func testRedeliveredMessageForAProcessedPhotoIsSkipped() async throws {
        let brokers = try KafkaTestBroker.shared()
        try await TestService.run(.sqlite, tune: { KafkaTestBroker.use(brokers, &$0) }) { service in
            let kafka = try XCTUnwrap(service.services.kafka)
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let photos = try await service.photos()
            let photo = try XCTUnwrap(photos.first)
            XCTAssertEqual(photo.status, .processed)
            XCTAssertEqual(service.ml.requestedPhotoIDs.filter { $0 == photo.photoID }.count, 1)
            let before = try await service.photo(photo.photoID)
            let skippedBefore = kafka.skippedMessages

            try await kafka.enqueue([WorkItem(photoID: photo.photoID, path: photo.path, attempt: 1)])

            let deadline = Date().addingTimeInterval(30)
            while kafka.skippedMessages == skippedBefore && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            XCTAssertEqual(kafka.skippedMessages, skippedBefore + 1, "the redelivered message was consumed and skipped")
            try await Task.sleep(for: .milliseconds(300))
            XCTAssertEqual(service.ml.requestedPhotoIDs.filter { $0 == photo.photoID }.count, 1, "no second ML request")
            let after = try await service.photo(photo.photoID)
            XCTAssertEqual(after, before, "the photo and its faces are untouched")
        }
    }

    /// The broker stops between two batches of a library's ingest: the batches committed meanwhile are FAILED (their
    /// photos stay READY); once the broker is back (empty: memory storage) the retry scheduler republishes them through
    /// a fresh producer, and every photo is processed exactly once.
    func testBrokerStoppedMidIngestFailsBatchesThenRepublishesThemOnceItIsBack() async throws {
        _ = try KafkaTestBroker.shared()
        let broker = try await TansuBroker.start()
        do {
            try await TestService.run(.sqlite, tune: { KafkaTestBroker.use(broker.address, &$0) }) { service in
                let first = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama"), batchSize: 2))
                XCTAssertEqual(first.processed, 8)
                XCTAssertEqual(Set(first.batches?.map(\.status) ?? []), ["PUBLISHED"])

                await broker.stop()
                let jobID = try await service.ingest(URL.faces("face_recognition_examples/alex_lacamoire"), batchSize: 1)
                let down = try await waitForBatches(service, jobID) { $0.count == 3 && $0.allSatisfy { $0.status == "FAILED" } }
                XCTAssertEqual(down.batches?.map(\.status), ["FAILED", "FAILED", "FAILED"], "no delivery report succeeds while the broker is down")
                XCTAssertEqual(down.ready, 3, "the photos wait READY in the database")
                XCTAssertEqual(down.processed, 0)

                try await broker.start()
                let status = try await service.waitUntilDone(jobID, timeout: 60)
                XCTAssertEqual(status.processed, 3)
                XCTAssertEqual(status.failed, 0)
                let republished = try await waitForBatches(service, jobID) { $0.allSatisfy { $0.status == "PUBLISHED" } }
                XCTAssertEqual(republished.batches?.map(\.status), ["PUBLISHED", "PUBLISHED", "PUBLISHED"])
                let photos = try await service.photos()
                XCTAssertEqual(photos.count, 11)
                XCTAssertTrue(photos.allSatisfy { $0.status == .processed })
                XCTAssertEqual(service.ml.requestedPhotoIDs.sorted(), photos.map(\.photoID).sorted(), "nothing lost, nothing processed twice")
            }
        } catch {
            await broker.stop()
            throw error
        }
        await broker.stop()
    }

    /// No broker answers when the service starts: it starts anyway, the ingest's batches FAILED; the broker comes up at
    /// that address and everything is published and processed.
    func testServiceStartedWhileTheBrokerIsDownPublishesOnceItIsUp() async throws {
        _ = try KafkaTestBroker.shared()
        let broker = try await TansuBroker.start()
        await broker.stop()
        do {
            try await TestService.run(.sqlite, tune: { KafkaTestBroker.use(broker.address, &$0) }) { service in
                let jobID = try await service.ingest(URL.faces("face_recognition_examples/kit_harington"), batchSize: 1)
                let down = try await waitForBatches(service, jobID) { $0.count == 3 && $0.allSatisfy { $0.status == "FAILED" } }
                XCTAssertEqual(down.batches?.map(\.status), ["FAILED", "FAILED", "FAILED"])
                try await broker.start()
                let status = try await service.waitUntilDone(jobID, timeout: 60)
                XCTAssertEqual(status.processed, 3)
                XCTAssertEqual(service.ml.requestedPhotoIDs.count, 3)
            }
        } catch {
            await broker.stop()
            throw error
        }
        await broker.stop()
    }

    // MARK: Helpers

    /// Batches of a job by status, polled until `condition` holds (or `timeout`).
    func waitForBatches(_ service: TestService, _ jobID: String, timeout: Double = 30,
                               until condition: ([IngestStatus.Batch]) -> Bool) async throws -> IngestStatus {
        let deadline = Date().addingTimeInterval(timeout)
        var status = try await service.request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
        while !condition(status.batches ?? []) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try await service.request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
        }
        return status
    }
}
