import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import SQLKit
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import Vapor
import XCTest

/// The real service on a free loopback port, on SQLite (temp file) or the PostgreSQL server the test
/// script started (`PHOTO_SORTER_TEST_POSTGRES_URL`; with `PHOTO_SORTER_REQUIRE_POSTGRES=1` a missing
/// server fails the tests instead of skipping them).
final class TestService: @unchecked Sendable {
    let app: Application
    let ml: FakeMLService
    let config: ServiceConfig
    private let sqliteDirectory: URL?

    static func start(_ flavor: DatabaseFlavor, ml behaviour: FakeMLService.Behaviour = .init(), backgroundWork: Bool = true,
                      tune: (inout ServiceConfig) -> Void = { _ in }) async throws -> TestService {
        var config = ServiceConfig()
        var sqliteDirectory: URL?
        switch flavor {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("photo-sorter-test-\(UUID().uuidString)")
            config.databaseURL = directory.appendingPathComponent("test.sqlite").path
            sqliteDirectory = directory
        case .postgres:
            guard let url = ProcessInfo.processInfo.environment["PHOTO_SORTER_TEST_POSTGRES_URL"] else {
                if ProcessInfo.processInfo.environment["PHOTO_SORTER_REQUIRE_POSTGRES"] == "1" {
                    XCTFail("PHOTO_SORTER_REQUIRE_POSTGRES=1 but PHOTO_SORTER_TEST_POSTGRES_URL is not set")
                }
                throw XCTSkip("PHOTO_SORTER_TEST_POSTGRES_URL not set; scripts/test.sh starts a PostgreSQL server")
            }
            config.databaseURL = url
            try await resetPostgres(url)
        }
        let ml = try await FakeMLService.start(behaviour)
        config.mlServiceURLs = [ml.url]
        config.port = try freePort()
        config.retryBackoffSeconds = 0.2
        config.schedulerIntervalSeconds = 0.2
        config.workerConcurrency = 4
        tune(&config)
        let app = try await Application.make(Environment(name: "testing", arguments: ["photo-sorter-tests", "serve"]))
        app.logger.logLevel = .warning
        try await configure(app, config: config, backgroundWork: backgroundWork)
        try await app.startup()
        return TestService(app: app, ml: ml, config: config, sqliteDirectory: sqliteDirectory)
    }

    /// Starts a service, runs `body`, and always stops the service afterwards.
    static func run(_ flavor: DatabaseFlavor, ml behaviour: FakeMLService.Behaviour = .init(), backgroundWork: Bool = true,
                    tune: (inout ServiceConfig) -> Void = { _ in }, _ body: (TestService) async throws -> Void) async throws {
        let service = try await start(flavor, ml: behaviour, backgroundWork: backgroundWork, tune: tune)
        do {
            try await body(service)
        } catch {
            try await service.stop()
            throw error
        }
        try await service.stop()
    }

    private init(app: Application, ml: FakeMLService, config: ServiceConfig, sqliteDirectory: URL?) {
        self.app = app
        self.ml = ml
        self.config = config
        self.sqliteDirectory = sqliteDirectory
    }

    var services: PhotoSorterServices { app.photoSorter }

    func stop() async throws {
        await services.stopBackgroundWork()
        try await app.asyncShutdown()
        try await ml.stop()
        if let sqliteDirectory { try? FileManager.default.removeItem(at: sqliteDirectory) }
    }

    /// Empties the test database so every test starts from a fresh schema.
    static func resetPostgres(_ url: String) async throws {
        let app = try await Application.make(Environment(name: "testing", arguments: ["photo-sorter-tests", "serve"]))
        app.logger.logLevel = .warning
        app.databases.use(try .postgres(url: url), as: .psql)
        let sql = app.db as! any SQLDatabase
        try await sql.raw("DROP SCHEMA public CASCADE").run()
        try await sql.raw("CREATE SCHEMA public").run()
        try await app.asyncShutdown()
    }

    private static func freePort() throws -> Int {
        let socket = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        defer { try? socket.close().wait() }
        return socket.localAddress!.port!
    }

    // MARK: HTTP

    struct Reply {
        let status: HTTPResponseStatus
        let body: Data
        let headers: HTTPHeaders

        /// The body as `T`; a body that is not one (an error answer) fails the test with what came instead.
        func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
            do { return try JSONDecoder().decode(T.self, from: body) } catch {
                throw UnexpectedReply(description: "cannot decode \(T.self) from \(status): \(String(decoding: body, as: UTF8.self))")
            }
        }

        var reason: String { (try? JSONDecoder().decode([String: JSONValue].self, from: body))?["reason"]?.string ?? "" }
    }

    struct UnexpectedReply: Error, CustomStringConvertible {
        let description: String
    }

    enum JSONValue: Decodable {
        case string(String), other
        init(from decoder: any Decoder) throws {
            self = (try? decoder.singleValueContainer().decode(String.self)).map(JSONValue.string) ?? .other
        }
        var string: String? { if case .string(let s) = self { s } else { nil } }
    }

    func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(config.port)\(path)")
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await app.http.client.shared.execute(request, timeout: .seconds(30))
        return Reply(status: response.status, body: Data(buffer: try await response.body.collect(upTo: 64 * 1024 * 1024)),
                     headers: response.headers)
    }

    func request<T: Encodable>(_ method: HTTPMethod, _ path: String, json: T) async throws -> Reply {
        try await request(method, path, body: try JSONEncoder().encode(json))
    }

    func ingest(_ folder: URL, batchSize: Int? = nil) async throws -> String {
        let reply = try await request(.POST, "/ingest-folder", json: IngestRequest(path: folder.path, batchSize: batchSize))
        XCTAssertEqual(reply.status, .accepted, reply.reason)
        return try reply.decode(IngestAccepted.self).jobId
    }

    /// Polls GET /ingest-status until the job is done (or fails the test after `timeout`).
    func waitUntilDone(_ jobID: String, timeout: Double = 60) async throws -> IngestStatus {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let status = try await request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
            if status.done { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = try await request(.GET, "/ingest-status/\(jobID)").decode(IngestStatus.self)
        XCTFail("job \(jobID) not done after \(timeout) s: \(status)")
        return status
    }

    func photos() async throws -> [PhotoView] {
        try await request(.GET, "/photos?limit=5000").decode(PhotoPage.self).photos
    }

    func photo(_ id: Int64) async throws -> PhotoView {
        try await request(.GET, "/photo/\(id)").decode(PhotoView.self)
    }

    func photo(path: String) async throws -> PhotoView? {
        guard let summary = try await photos().first(where: { $0.path == path }) else { return nil }
        return try await photo(summary.photoID)
    }
}

extension URL {
    /// A folder of the shared face test data, e.g. `faces("face_recognition_examples")`.
    static func faces(_ relative: String) -> URL {
        EmbeddingFixture.facesRoot.appendingPathComponent(relative).resolvingSymlinksInPath()
    }
}
