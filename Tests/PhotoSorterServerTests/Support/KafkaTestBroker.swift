import Foundation
import Glibc
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import XCTest

/// The Kafka broker of the Kafka tests: Tansu, the Kafka-compatible broker scripts/start-kafka.sh starts
/// (`PHOTO_SORTER_TEST_KAFKA_BROKERS`; with `PHOTO_SORTER_REQUIRE_KAFKA=1` a missing broker fails the tests instead of
/// skipping them), or a private one a test starts and stops itself (`TansuBroker`).
enum KafkaTestBroker {
    /// The shared broker's address, after checking that the loaded librdkafka can talk to Tansu.
    static func shared() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        guard let brokers = environment["PHOTO_SORTER_TEST_KAFKA_BROKERS"], !brokers.isEmpty else {
            if environment["PHOTO_SORTER_REQUIRE_KAFKA"] == "1" {
                XCTFail("PHOTO_SORTER_REQUIRE_KAFKA=1 but PHOTO_SORTER_TEST_KAFKA_BROKERS is not set")
            }
            throw XCTSkip("PHOTO_SORTER_TEST_KAFKA_BROKERS not set; scripts/test.sh starts a Kafka broker (scripts/start-kafka.sh)")
        }
        try requireUsableLibrdkafka()
        return brokers
    }

    /// Tansu 0.6 needs a newer librdkafka than Debian's 2.0.2 (which fails with "Read underflow").
    static func requireUsableLibrdkafka() throws {
        guard Kafka.versionNumber >= 0x020A_0000 else {
            XCTFail("""
                librdkafka \(Kafka.version) is loaded; Tansu needs 2.10 or newer: run with LD_LIBRARY_PATH=\
                \(EmbeddingFixture.repositoryRoot.path)/.build-kafka/lib (scripts/start-kafka.sh links librdkafka 2.16 there)
                """)
            throw XCTSkip("librdkafka too old for Tansu")
        }
    }

    /// Switches a test service to the Kafka queue on `brokers`, with a topic and group of its own (tests never see
    /// each other's messages) and timeouts short enough for tests.
    static func use(_ brokers: String, _ config: inout ServiceConfig, partitions: Int = 4) {
        let run = UUID().uuidString.prefix(8).lowercased()
        config.queue = "kafka"
        config.kafkaBrokers = brokers.split(separator: ",").map(String.init)
        config.kafkaTopic = "photos-to-process-test-\(run)"
        config.kafkaGroup = "photo-sorter-workers-test-\(run)"
        config.kafkaPartitions = partitions
        config.kafkaMessageTimeoutSeconds = 3
        config.kafkaRepublishAfterSeconds = 5
    }
}

/// A Tansu broker of a test's own, on a fixed port so it can be stopped and started again at the same address
/// (memory storage: a restart comes back empty, like a broker that lost its data).
final class TansuBroker: @unchecked Sendable {
    let port: Int
    private var process: Process?
    private let log: URL

    var address: String { "127.0.0.1:\(port)" }

    static func binary() throws -> String {
        let path = ProcessInfo.processInfo.environment["PHOTO_SORTER_TEST_TANSU"]
            ?? EmbeddingFixture.repositoryRoot.appendingPathComponent(".build-kafka/bin/tansu").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            if ProcessInfo.processInfo.environment["PHOTO_SORTER_REQUIRE_KAFKA"] == "1" {
                XCTFail("PHOTO_SORTER_REQUIRE_KAFKA=1 but the Tansu binary is not at \(path) (PHOTO_SORTER_TEST_TANSU)")
            }
            throw XCTSkip("no Tansu binary at \(path); scripts/start-kafka.sh installs it")
        }
        return path
    }

    /// A new broker on a free port, running.
    static func start() async throws -> TansuBroker {
        let broker = TansuBroker(port: try freePort())
        try await broker.start()
        return broker
    }

    private init(port: Int) {
        self.port = port
        log = FileManager.default.temporaryDirectory.appendingPathComponent("tansu-test-\(port).log")
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    func start() async throws {
        precondition(process == nil, "already running")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.binary())
        process.arguments = ["broker", "--listener-url", "tcp://\(address)", "--advertised-listener-url", "tcp://\(address)",
                             "--storage-engine", "memory://tansu/"]
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(20)
        while !Self.accepts(port: port) {
            guard Date() < deadline, process.isRunning else {
                throw XCTSkip("Tansu did not start on \(address); see \(log.path)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops it (SIGTERM, then SIGKILL) and waits until the port is closed.
    func stop() async {
        guard let process else { return }
        self.process = nil
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
    }

    private static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw XCTSkip("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
