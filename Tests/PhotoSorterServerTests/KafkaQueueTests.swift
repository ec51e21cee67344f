import Foundation
@testable import PhotoSorterServer
import XCTest

/// The Kafka work queue end to end against a real broker (Tansu; see `KafkaTestBroker`), through the HTTP API, on
/// SQLite and PostgreSQL. Only the ML service is the test stand-in (`FakeMLService`, real fixture embeddings).
final class KafkaQueueTests: XCTestCase {
    func testKafkaQueueProcessesEveryPhotoOnceIntoTheDatabaseQueuesPersonsOnSQLite() async throws {
        try await KafkaScenarios.processesEveryPhotoOnceIntoTheDatabaseQueuesPersons(.sqlite)
    }

    func testKafkaQueueProcessesEveryPhotoOnceIntoTheDatabaseQueuesPersonsOnPostgres() async throws {
        try await KafkaScenarios.processesEveryPhotoOnceIntoTheDatabaseQueuesPersons(.postgres)
    }

    func testRedeliveredMessageForAProcessedPhotoIsSkipped() async throws {
        try await KafkaScenarios.redeliveredMessageForAProcessedPhotoIsSkipped()
    }

    func testBrokerStoppedMidIngestFailsBatchesThenRepublishesThemOnceItIsBack() async throws {
        try await KafkaScenarios.brokerStoppedMidIngestFailsBatchesThenRepublishesThem()
    }

    func testServiceStartedWhileTheBrokerIsDownPublishesOnceItIsUp() async throws {
        try await KafkaScenarios.serviceStartedWhileTheBrokerIsDownPublishesOnceItIsUp()
    }
}

enum KafkaScenarios {
    /// Sorts `folder` through a service, checks that every photo went to the ML service exactly once and every batch
    /// ended `batchStatus`, and returns the persons: for each person, the faces (photo path and box) it holds.
    static func sort(_ flavor: DatabaseFlavor, _ folder: URL, batchStatus: String, tune: @escaping (inout ServiceConfig) -> Void) async throws
        -> Set<Set<String>> {
        var persons: Set<Set<String>> = []
        try await TestService.run(flavor, tune: tune) { service in
            let status = try await service.waitUntilDone(try await service.ingest(folder, batchSize: 5), timeout: 60)
            XCTAssertEqual(status.status, "COMPLETED")
            XCTAssertEqual(status.failed, 0)
            XCTAssertEqual(status.processed, status.scanned)
            XCTAssertEqual(Set(status.batches?.map(\.status) ?? []), [batchStatus], "\(status.batches ?? [])")
            let photos = try await service.photos()
            XCTAssertEqual(photos.count, status.scanned)
            XCTAssertTrue(photos.allSatisfy { $0.status == .processed })
            let requests = service.ml.requestedPhotoIDs
            XCTAssertEqual(requests.sorted(), photos.map(\.photoID).sorted(), "every photo sent to the ML service exactly once")
            var faces: [Int64: Set<String>] = [:]
            for summary in photos {
                for detection in try await service.photo(summary.photoID).detections ?? [] {
                    faces[detection.personID, default: []].insert("\(summary.path.dropFirst(folder.path.count)) \(detection.bbox)")
                }
            }
            persons = Set(faces.values)
        }
        return persons
    }

    /// The same folder through the database queue and through Kafka: each photo processed once, the same persons.
    static func processesEveryPhotoOnceIntoTheDatabaseQueuesPersons(_ flavor: DatabaseFlavor) async throws {
        let brokers = try KafkaTestBroker.shared()
        let folder = URL.faces("face_recognition_examples")
        let viaDatabase = try await sort(flavor, folder, batchStatus: "QUEUED") { _ in }
        let viaKafka = try await sort(flavor, folder, batchStatus: "PUBLISHED") { KafkaTestBroker.use(brokers, &$0) }
        XCTAssertGreaterThanOrEqual(viaDatabase.count, 6)
        XCTAssertEqual(viaKafka, viaDatabase, "the Kafka queue must sort into the same persons as the database queue")
    }

    /// A second message for a photo already PROCESSED (what a redelivery after a rebalance or a crash before the
    /// offset commit looks like to the consumer) is consumed, skipped, and never reaches the ML service.
    static func redeliveredMessageForAProcessedPhotoIsSkipped() async throws {
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

    /// Batches of a job by status, polled until `condition` holds (or `timeout`).
    static func waitForBatches(_ service: TestService, _ jobID: String, timeout: Double = 30,
                               until condition: ([IngestStatus.Batch]) -> Bool) async throws -> IngestStatus {
        let deadline = Date().addingTimeInterval(timeout)
        var status = try await service.request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
        while !condition(status.batches ?? []) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try await service.request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
        }
        return status
    }

    /// The broker stops between two batches of a library's ingest: the batches committed meanwhile are FAILED (their
    /// photos stay READY); once the broker is back (empty: memory storage) the retry scheduler republishes them through
    /// a fresh producer, and every photo is processed exactly once.
    static func brokerStoppedMidIngestFailsBatchesThenRepublishesThem() async throws {
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
    static func serviceStartedWhileTheBrokerIsDownPublishesOnceItIsUp() async throws {
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
}
