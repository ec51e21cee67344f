import AsyncHTTPClient
import NIOCore
import NIOPosix
@testable import PhotoSorterServer
import XCTest

/// `sort` asks `MLClient.listens` whether to start an ML service and when the one it started is up.
final class MLClientListensTests: XCTestCase {
    private func client(port: Int, http: HTTPClient) -> MLClient {
        MLClient(http: http, baseURLs: ["http://127.0.0.1:\(port)"], sharedSecret: nil, timeoutSeconds: 5)
    }

    func testAListeningPortIsSeenAndAFreeOneIsToldAtOnceNotAfterTheConnectTimeout() async throws {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(2)  // as `configure` sets it
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try XCTUnwrap(server.localAddress?.port)
        let listening = await client(port: port, http: http).listens()
        try await server.close()

        let started = ContinuousClock.now
        let free = await client(port: port, http: http).listens()
        let waited = ContinuousClock.now - started
        try await http.shutdown()

        XCTAssertTrue(listening)
        XCTAssertFalse(free)
        XCTAssertLessThan(waited, .milliseconds(500), "a refused connection must answer at once")
    }
}
