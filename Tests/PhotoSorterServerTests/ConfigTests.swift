import Foundation
@testable import PhotoSorterServer
import XCTest

final class ConfigTests: XCTestCase {
    func testDefaultsAreTheEmbeddedSQLiteSetup() throws {
        let config = try ServiceConfig.load(environment: [:])
        XCTAssertEqual(config.databaseURL, "./data/photo-sorter.sqlite")
        XCTAssertEqual(config.batchSize, 50)
        XCTAssertEqual(config.processingTimeoutSeconds, 600)
        XCTAssertEqual(config.callbackBaseURL, "http://127.0.0.1:8080")
    }

    func testFileThenEnvironmentOverride() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"batchSize": 20, "matchThreshold": 0.9, "mlServiceURLs": ["http://a:1", "http://b:2"]}"#.utf8).write(to: file)
        let config = try ServiceConfig.load(environment: [
            "PHOTO_SORTER_CONFIG": file.path, "PHOTO_SORTER_BATCH_SIZE": "10", "PHOTO_SORTER_ALLOWED_ROOTS": "/photos:/more",
            "PHOTO_SORTER_DATABASE_URL": "postgres://u@h:5432/db",
        ])
        XCTAssertEqual(config.batchSize, 10)
        XCTAssertEqual(config.matchThreshold, 0.9)
        XCTAssertEqual(config.mlServiceURLs, ["http://a:1", "http://b:2"])
        XCTAssertEqual(config.allowedRoots, ["/photos", "/more"])
        XCTAssertEqual(DatabaseFlavor.parse(config.databaseURL).flavor, .postgres)
    }

    func testKafkaQueueIsConfiguredFromTheEnvironmentAndValidated() throws {
        XCTAssertEqual(try ServiceConfig.load(environment: [:]).queue, "database")
        let config = try ServiceConfig.load(environment: [
            "PHOTO_SORTER_QUEUE": "kafka", "PHOTO_SORTER_KAFKA_BROKERS": "k1:9092, k2:9093", "PHOTO_SORTER_KAFKA_TOPIC": "photos.v2",
            "PHOTO_SORTER_KAFKA_PARTITIONS": "24",
        ])
        XCTAssertTrue(config.usesKafka)
        XCTAssertEqual(config.kafkaBrokers, ["k1:9092", "k2:9093"])
        XCTAssertEqual(config.kafkaTopic, "photos.v2")
        XCTAssertEqual(config.kafkaPartitions, 24)
        XCTAssertEqual(config.kafkaGroup, "photo-sorter-workers")
        XCTAssertEqual(KafkaWorkQueue.Settings(config: config).brokerList, "k1:9092,k2:9093")
        let refused: [([String: String], String)] = [
            (["PHOTO_SORTER_QUEUE": "kafka"], "PHOTO_SORTER_KAFKA_BROKERS"),
            (["PHOTO_SORTER_QUEUE": "rabbit"], "PHOTO_SORTER_QUEUE=rabbit"),
            (["PHOTO_SORTER_QUEUE": "kafka", "PHOTO_SORTER_KAFKA_BROKERS": "k1"], "host:port"),
            (["PHOTO_SORTER_QUEUE": "kafka", "PHOTO_SORTER_KAFKA_BROKERS": "k1:99999"], "host:port"),
            (["PHOTO_SORTER_QUEUE": "kafka", "PHOTO_SORTER_KAFKA_BROKERS": "k1:9092", "PHOTO_SORTER_KAFKA_TOPIC": "a/b"], "topic"),
            (["PHOTO_SORTER_QUEUE": "kafka", "PHOTO_SORTER_KAFKA_BROKERS": "k1:9092", "PHOTO_SORTER_KAFKA_PARTITIONS": "0"], "PARTITIONS"),
        ]
        for (environment, expected) in refused {
            XCTAssertThrowsError(try ServiceConfig.load(environment: environment), "\(environment)") {
                XCTAssertTrue($0 is ConfigError && "\($0)".contains(expected), "\($0)")
            }
        }
    }

    func testServiceReachableFromOtherMachinesNeedsAnAPITokenAndTheSharedSecret() throws {
        let secret = "PHOTO_SORTER_SHARED_SECRET"
        XCTAssertThrowsError(try ServiceConfig.load(environment: ["PHOTO_SORTER_HOST": "0.0.0.0", secret: "fedcba9876543210fedc"])) {
            XCTAssertTrue("\($0)".contains("PHOTO_SORTER_API_TOKEN"), "\($0)")
        }
        XCTAssertThrowsError(try ServiceConfig.load(environment: ["PHOTO_SORTER_HOST": "0.0.0.0", secret: "fedcba9876543210fedc",
                                                                  "PHOTO_SORTER_API_TOKEN": "short"]))
        for missingOrShort in [[:], [secret: "short"]] {
            let environment = ["PHOTO_SORTER_HOST": "0.0.0.0", "PHOTO_SORTER_API_TOKEN": "0123456789abcdef0123"].merging(missingOrShort) { $1 }
            XCTAssertThrowsError(try ServiceConfig.load(environment: environment)) {
                XCTAssertTrue("\($0)".contains(secret), "\($0)")
            }
        }
        let open = try ServiceConfig.load(environment: ["PHOTO_SORTER_HOST": "0.0.0.0", "PHOTO_SORTER_API_TOKEN": "0123456789abcdef0123",
                                                        secret: "fedcba9876543210fedc"])
        XCTAssertEqual(open.apiToken, "0123456789abcdef0123")
        XCTAssertEqual(open.browseURL, "http://127.0.0.1:8080/")
        for loopback in ["127.0.0.1", "localhost", "::1", "127.0.0.2"] {
            XCTAssertNoThrow(try ServiceConfig.load(environment: ["PHOTO_SORTER_HOST": loopback]), loopback)
        }
    }

    func testInvalidValuesAreRejectedWithTheirName() {
        XCTAssertThrowsError(try ServiceConfig.load(environment: ["PHOTO_SORTER_PORT": "eighty"])) {
            XCTAssertTrue("\($0)".contains("PHOTO_SORTER_PORT"), "\($0)")
        }
        XCTAssertThrowsError(try ServiceConfig.load(environment: ["PHOTO_SORTER_BATCH_SIZE": "0"]))
        XCTAssertThrowsError(try ServiceConfig.load(environment: ["PHOTO_SORTER_CONFIG": "/no/such/config.json"]))
    }

    func testDatabaseURLForms() {
        XCTAssertEqual(DatabaseFlavor.parse("sqlite:///var/lib/ps.sqlite").location, "/var/lib/ps.sqlite")
        XCTAssertEqual(DatabaseFlavor.parse("./data/x.sqlite").flavor, .sqlite)
        XCTAssertEqual(DatabaseFlavor.parse("postgresql://h/db").flavor, .postgres)
    }
}
