import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// GET /health reports photo counts and GET /metrics Prometheus counters.
class HealthAndMetricsTests: DatabaseTestCase {
    /// GET /health reports photo counts; GET /metrics exposes Prometheus counters.
    func testHealthAndMetricsReport() async throws {
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

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class HealthAndMetricsTestsOnPostgres: HealthAndMetricsTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testHealthAndMetricsReport() async throws { try await super.testHealthAndMetricsReport() }
}
