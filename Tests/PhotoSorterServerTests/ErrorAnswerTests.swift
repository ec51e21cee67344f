import Foundation
@testable import PhotoSorterServer
import SQLKit
import Vapor
import XCTest

/// What fuzzing the API (e2e/test_api_contract.py) showed, each fixed and kept fixed here: error bodies carry
/// no internals, bodies over the limit are refused, a malformed query value is an error, not the default, and a
/// method a path does not have is a 405 naming the ones it has. On SQLite only: none of it depends on the database.
final class ErrorAnswerTests: XCTestCase {
    func testADatabaseFailureAnswersAGeneric500WithoutSQL() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            try await service.services.database.sql.raw("DROP TABLE persons").run()
            let reply = try await service.request(.GET, "/persons")
            XCTAssertEqual(reply.status, .internalServerError)
            XCTAssertEqual(reply.reason, InternalErrorMiddleware.reason)
            let body = String(decoding: reply.body, as: UTF8.self).lowercased()
            for leak in ["select", "persons", "sqlite", "no such table", ".swift"] {
                XCTAssertFalse(body.contains(leak), "error body shows \(leak): \(body)")
            }
        }
    }

    func testBodiesOverTheLimitAre413OnTheCallbackAndTheJSONEndpoints() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            // 17 MiB of valid JSON: a string field over the 16 MiB limit.
            let body = Data("{\"photo_id\": 1, \"status\": \"PROCESSED\", \"error\": \"".utf8) + Data(repeating: UInt8(ascii: "x"), count: 17 << 20)
                + Data("\"}".utf8)
            for (method, path) in [(HTTPMethod.POST, "/callback/photo-processed"), (.POST, "/persons/merge"), (.POST, "/faces/move"),
                                   (.PATCH, "/person/1"), (.PUT, "/photo/update-status"), (.POST, "/ingest-folder")] {
                let reply = try await service.request(method, path, body: body)
                XCTAssertEqual(reply.status, .payloadTooLarge, "\(method) \(path): \(reply.reason)")
                XCTAssertFalse(reply.reason.isEmpty, "\(method) \(path): the 413 has the JSON error body")
            }
        }
    }

    func testAMalformedQueryValueIs400NotTheDefault() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            for path in ["/persons?limit=abc", "/persons?offset=null", "/photos?limit=1&limit=2", "/review?limit=1.5",
                         "/person-dump?since_seq=9223372036854775808",
                         "/person-dump?since_seq=1&epoch=e&since_id=x", "/person/1?include_embedding=maybe"] {
                let reply = try await service.request(.GET, path)
                XCTAssertEqual(reply.status, .badRequest, "\(path): \(reply.reason)")
            }
            let fine = try await service.request(.GET, "/persons?limit=10&offset=0&unnamed=true")
            XCTAssertEqual(fine.status, .ok, fine.reason)
        }
    }

    func testAMethodThePathDoesNotHaveIs405WithAllow() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            for (method, path, allow) in [(HTTPMethod.DELETE, "/persons", "GET"), (.POST, "/health", "GET"), (.GET, "/persons/merge", "POST"),
                                          (.PUT, "/person/7", "GET, PATCH"), (.DELETE, "/faces/3/reject", "POST"),
                                          // Not `GET /faces/{id}` with the id "move": the more specific path decides.
                                          (.GET, "/faces/move", "POST"), (.OPTIONS, "/photo/update-status", "PUT")] {
                let reply = try await service.request(method, path)
                XCTAssertEqual(reply.status, .methodNotAllowed, "\(method) \(path)")
                XCTAssertEqual(reply.headers.first(name: "Allow"), allow, "\(method) \(path)")
            }
            let unknown = try await service.request(.GET, "/no-such-thing")
            XCTAssertEqual(unknown.status, .notFound)
        }
    }
}
