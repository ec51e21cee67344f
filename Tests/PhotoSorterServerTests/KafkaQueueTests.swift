import Foundation
@testable import PhotoSorterServer
import XCTest

/// The Kafka work queue end to end against a real broker (Tansu; see `KafkaTestBroker`), through the HTTP API: the
/// same folder sorts into the same persons through Kafka as through the database queue. Only the ML service is the
/// test stand-in (`FakeMLService`, real fixture embeddings).
class KafkaQueueTests: DatabaseTestCase {
    /// The same folder through the database queue and through Kafka: each photo processed once, the same persons.
    func testKafkaQueueProcessesEveryPhotoOnceIntoTheDatabaseQueuesPersons() async throws {
        let brokers = try KafkaTestBroker.shared()
        let folder = URL.faces("face_recognition_examples")
        let viaDatabase = try await sort(flavor, folder, batchStatus: "QUEUED") { _ in }
        let viaKafka = try await sort(flavor, folder, batchStatus: "PUBLISHED") { KafkaTestBroker.use(brokers, &$0) }
        XCTAssertGreaterThanOrEqual(viaDatabase.count, 6)
        XCTAssertEqual(viaKafka, viaDatabase, "the Kafka queue must sort into the same persons as the database queue")
    }

    // MARK: Helpers

    /// Sorts `folder` through a service, checks that every photo went to the ML service exactly once and every batch
    /// ended `batchStatus`, and returns the persons: for each person, the faces (photo path and box) it holds.
    func sort(_ flavor: DatabaseFlavor, _ folder: URL, batchStatus: String, tune: @escaping (inout ServiceConfig) -> Void) async throws
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
                    faces[detection.personID!, default: []].insert("\(summary.path.dropFirst(folder.path.count)) \(detection.bbox)")
                }
            }
            persons = Set(faces.values)
        }
        return persons
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class KafkaQueueTestsOnPostgres: KafkaQueueTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testKafkaQueueProcessesEveryPhotoOnceIntoTheDatabaseQueuesPersons() async throws { try await super.testKafkaQueueProcessesEveryPhotoOnceIntoTheDatabaseQueuesPersons() }
}
