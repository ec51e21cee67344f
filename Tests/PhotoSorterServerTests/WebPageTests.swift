import AsyncHTTPClient
import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import Vapor
import XCTest

/// The web page's server side: the page and its files, the protections of a service a browser talks to (cross-site
/// writes, the API token), and the failures its Jobs page lists. On SQLite only: none of it depends on the database.
final class WebPageTests: XCTestCase {
    /// GET / is the page, with its scripts and styles from the package, a strict content security policy, and
    /// the settings it reads; an unknown file is a 404.
    func testWebPageIsServedWithItsFiles() async throws {
        try await TestService.run(.sqlite, tune: { $0.allowedRoots = ["/photos"] }) { service in
            let page = try await service.request(.GET, "/")
            XCTAssertEqual(page.status, .ok)
            XCTAssertEqual(page.headers.first(name: .contentType), "text/html; charset=utf-8")
            XCTAssertTrue(String(decoding: page.body, as: UTF8.self).contains("/ui/app.js"))
            XCTAssertTrue(page.headers.first(name: .contentSecurityPolicy)?.contains("script-src 'self'") == true)
            for file in ["app.js", "app.css"] {
                let reply = try await service.request(.GET, "/ui/\(file)")
                XCTAssertEqual(reply.status, .ok, file)
                XCTAssertFalse(reply.body.isEmpty, file)
                let etag = try XCTUnwrap(reply.headers.first(name: .eTag))
                let again = try await service.request(.GET, "/ui/\(file)", headers: [("If-None-Match", etag)])
                XCTAssertEqual(again.status, .notModified)
            }
            let missing = try await service.request(.GET, "/ui/secret.txt")
            XCTAssertEqual(missing.status, .notFound)
            let settings = try await service.request(.GET, "/ui/settings").decode(WebSettings.self)
            XCTAssertEqual(settings.allowedRoots, ["/photos"])
            XCTAssertFalse(settings.tokenRequired)
        }
    }

    /// A browser write from another site, a form, or a script without the page's header is refused (403/415)
    /// and changes nothing; the page's own JSON writes and non-browser clients go through.
    func testCrossSiteWritesAreRefused() async throws {
        try await TestService.run(.sqlite) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let person = try await service.request(.GET, "/persons?limit=1").decode(PersonPage.self).persons[0].personID
            let rename = try JSONEncoder().encode(PersonUpdate(displayName: .some("Mallory")))
            let host = "127.0.0.1:\(service.config.port)"
            let refused: [(String, [(String, String)], Data, HTTPResponseStatus)] = [
                ("another origin", [("Origin", "http://evil.example"), ("X-Photo-Sorter-Request", "1")], rename, .forbidden),
                ("another site", [("Sec-Fetch-Site", "cross-site"), ("X-Photo-Sorter-Request", "1")], rename, .forbidden),
                ("same origin without the header", [("Origin", "http://\(host)")], rename, .forbidden),
                ("a form body", [("Content-Type", "application/x-www-form-urlencoded")], Data("display_name=Mallory".utf8), .unsupportedMediaType),
            ]
            for (what, headers, body, status) in refused {
                var request = HTTPClientRequest(url: "http://\(host)/person/\(person)")
                request.method = .PATCH
                request.headers.add(name: "Content-Type", value: "application/json")
                for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
                request.body = .bytes(ByteBuffer(data: body))
                let response = try await service.app.http.client.shared.execute(request, timeout: .seconds(10))
                XCTAssertEqual(response.status, status, what)
            }
            let unchanged = try await service.request(.GET, "/person/\(person)").decode(PersonView.self)
            XCTAssertNil(unchanged.displayName, "a refused write changed the person")

            let fromPage = try await service.request(.PATCH, "/person/\(person)", body: rename,
                                                     headers: [("Origin", "http://\(host)"), ("Sec-Fetch-Site", "same-origin"),
                                                               ("X-Photo-Sorter-Request", "1")])
            XCTAssertEqual(fromPage.status, .ok, fromPage.reason)
            let fromScript = try await service.request(.PATCH, "/person/\(person)", json: PersonUpdate(displayName: .some("Ann")))
            XCTAssertEqual(fromScript.status, .ok, fromScript.reason)
        }
    }

    /// With an API token every page and call needs it (header, bearer, or the cookie `/?token=` sets); the ML
    /// service gets in with the shared secret; /health stays open; a token holder may write where the secret is asked.
    func testApiTokenGuardsEveryPageAndCall() async throws {
        let token = "token-0123456789abcdef"
        try await TestService.run(.sqlite, tune: { $0.apiToken = token; $0.sharedSecret = "ml-secret" }) { service in
            let ingest = try await service.request(.POST, "/ingest-folder", body: try JSONEncoder().encode(["path": URL.faces("face_recognition_examples").path]),
                                                   headers: [("Authorization", "Bearer \(token)")])
            XCTAssertEqual(ingest.status, .accepted, ingest.reason)
            let jobID = try ingest.decode(IngestAccepted.self).jobId
            let status = try await waitUntilDone(jobID, service, headers: [("X-Photo-Sorter-Token", token)])
            XCTAssertGreaterThan(status.faces, 0, "the ML service's callbacks got in with the shared secret")

            for path in ["/", "/persons", "/ui/app.js", "/ui/settings", "/thumbnails/person/1.jpg", "/ingest-jobs"] {
                let reply = try await service.request(.GET, path)
                XCTAssertEqual(reply.status, .unauthorized, path)
            }
            let wrongCookie = try await service.request(.GET, "/persons", headers: [("Cookie", "photo_sorter_token=nope")])
            XCTAssertEqual(wrongCookie.status, .unauthorized)
            let health = try await service.request(.GET, "/health")
            XCTAssertEqual(health.status, .ok)

            let wrong = try await service.request(.GET, "/?token=nope")
            XCTAssertEqual(wrong.status, .unauthorized)
            // The redirect itself, as the browser sees it (the test client would follow it without the cookie).
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            let login = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(service.config.port)/?token=\(token)"), timeout: .seconds(10))
            try await client.shutdown()
            XCTAssertEqual(login.status, .seeOther)
            XCTAssertEqual(login.headers.first(name: .location), "/")
            let cookie = try XCTUnwrap(login.headers.first(name: .setCookie))
            XCTAssertTrue(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), cookie)
            let withCookie = try await service.request(.GET, "/persons", headers: [("Cookie", "photo_sorter_token=\(token)")])
            XCTAssertEqual(withCookie.status, .ok)
            let page = try await service.request(.GET, "/", headers: [("Cookie", "photo_sorter_token=\(token)")])
            XCTAssertEqual(page.status, .ok)

            // The page holds the token, not the shared secret: with the token it may correct people.
            let person = try await service.request(.GET, "/persons?limit=1", headers: [("X-Photo-Sorter-Token", token)])
                .decode(PersonPage.self).persons[0].personID
            let rename = try JSONEncoder().encode(PersonUpdate(displayName: .some("Ann")))
            let byPage = try await service.request(.PATCH, "/person/\(person)", body: rename,
                                                   headers: [("Cookie", "photo_sorter_token=\(token)"), ("X-Photo-Sorter-Request", "1")])
            XCTAssertEqual(byPage.status, .ok, byPage.reason)
            let anonymous = try await service.request(.PATCH, "/person/\(person)", body: rename)
            XCTAssertEqual(anonymous.status, .unauthorized)
        }
    }

    /// GET /ingest-jobs/{id}/failures names each photo of the job that failed, with its reason.
    func testJobFailuresListEachPhotoWithItsReason() async throws {
        try await TestService.run(.sqlite, tune: { $0.maxRetries = 0 }) { service in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("photo-sorter-failures-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            // A JPEG header and nothing usable behind it: the scanner takes it, the ML service cannot decode it.
            try (Data([0xFF, 0xD8, 0xFF, 0xE0]) + Data("truncated".utf8)).write(to: folder.appendingPathComponent("broken.jpg"))
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama.jpg"),
                                             to: folder.appendingPathComponent("obama.jpg"))
            let jobID = try await service.ingest(folder)
            _ = try await service.waitUntilDone(jobID)
            let failures = try await service.request(.GET, "/ingest-jobs/\(jobID)/failures").decode(JobFailures.self).failures
            XCTAssertEqual(failures.map { URL(fileURLWithPath: $0.path).lastPathComponent }, ["broken.jpg"])
            XCTAssertTrue(failures.first?.error?.contains("cannot identify image") == true, failures.first?.error ?? "no reason")
            let unknown = try await service.request(.GET, "/ingest-jobs/no-such-job/failures")
            XCTAssertEqual(unknown.status, .notFound)
        }
    }

    // MARK: Helpers

    private func waitUntilDone(_ jobID: String, _ service: TestService, headers: [(String, String)]) async throws -> IngestStatus {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let status = try await service.request(.GET, "/ingest-status/\(jobID)", headers: headers).decode(IngestStatus.self)
            if status.done { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestService.UnexpectedReply(description: "job \(jobID) did not finish in 60 s")
    }
}
