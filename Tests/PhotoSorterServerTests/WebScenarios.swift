import AsyncHTTPClient
import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// The people web page's server side: images from storage, lazy rendering for older databases, the page's
/// files, and the protections of a service a browser talks to (cross-site writes, the API token).
enum WebScenarios {
    /// The label the fake ML service put into a JPEG's comment segment.
    static func label(of jpeg: Data) -> String? {
        guard jpeg.count > 6, jpeg.starts(with: [0xFF, 0xD8, 0xFF, 0xFE]) else { return nil }
        let length = Int(jpeg[4]) << 8 | Int(jpeg[5])
        return String(decoding: jpeg[6..<(4 + length)], as: UTF8.self)
    }

    /// Each face's thumbnail, each person's cover and each photo's preview come from what the callback stored,
    /// as JPEGs with an ETag the browser can revalidate (304); the ML service is never asked to render.
    static func imagesFromCallbacksAreServedFromStorage(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let page = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self)
            XCTAssertFalse(page.persons.isEmpty)
            for photo in try await service.photos() where photo.status == .processed {
                let detailed = try await service.photo(photo.photoID)
                let file = URL(fileURLWithPath: photo.path).lastPathComponent
                for (index, detection) in (detailed.detections ?? []).enumerated() {
                    let reply = try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")
                    XCTAssertEqual(reply.status, .ok)
                    XCTAssertEqual(reply.headers.first(name: .contentType), "image/jpeg")
                    let shown = label(of: reply.body) ?? ""
                    XCTAssertTrue(shown.hasPrefix("callback ") && shown.hasSuffix("\(file) face \(index)"), shown)
                }
                let preview = try await service.request(.GET, "/thumbnails/photo/\(photo.photoID).jpg")
                XCTAssertEqual(preview.status, .ok)
                XCTAssertTrue(label(of: preview.body)?.hasSuffix("\(file) preview") == true, label(of: preview.body) ?? "no label")
            }
            for person in page.persons {
                let cover = try XCTUnwrap(person.coverFaceID, "person \(person.personID) has no cover face")
                let face = try await service.request(.GET, "/faces/\(cover)").decode(FaceView.self)
                XCTAssertEqual(face.personID, person.personID)
                let thumbnail = try await service.request(.GET, "/thumbnails/person/\(person.personID).jpg")
                let coverThumbnail = try await service.request(.GET, "/thumbnails/face/\(cover).jpg")
                XCTAssertEqual(thumbnail.body, coverThumbnail.body)
            }
            let first = try await service.request(.GET, "/thumbnails/person/\(page.persons[0].personID).jpg")
            let etag = try XCTUnwrap(first.headers.first(name: .eTag))
            XCTAssertTrue(first.headers.first(name: .cacheControl)?.hasPrefix("private") == true)
            let revalidated = try await service.request(.GET, "/thumbnails/person/\(page.persons[0].personID).jpg",
                                                        headers: [("If-None-Match", etag)])
            XCTAssertEqual(revalidated.status, .notModified)
            XCTAssertTrue(revalidated.body.isEmpty)
            XCTAssertEqual(service.ml.renderedPaths, [])

            let missingFace = try await service.request(.GET, "/thumbnails/face/999999.jpg")
            XCTAssertEqual(missingFace.status, .notFound, missingFace.reason)
            let badName = try await service.request(.GET, "/thumbnails/face/abc.png")
            XCTAssertEqual(badName.status, .unprocessableEntity)
        }
    }

    /// A database from before thumbnails (the ML service sent none) gets them on first request: one render per
    /// photo however many of its faces are asked for at once, stored, and never rendered again.
    static func olderDatabasesGetImagesLazilyOncePerPhoto(_ flavor: DatabaseFlavor) async throws {
        var behaviour = FakeMLService.Behaviour()
        behaviour.sendsImages = false
        try await TestService.run(flavor, ml: behaviour) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let photos = try await service.photos().filter { $0.status == .processed }
            let several = try await asyncFirst(photos) { try await service.photo($0.photoID).detections?.count ?? 0 >= 2 }
            let photo = try XCTUnwrap(several, "the fixtures have a photo with several faces")
            let detections = try await service.photo(photo.photoID).detections ?? []
            let replies = try await withThrowingTaskGroup(of: (Int, TestService.Reply).self) { group in
                for (index, detection) in detections.enumerated() {
                    group.addTask { (index, try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")) }
                }
                group.addTask { (-1, try await service.request(.GET, "/thumbnails/photo/\(photo.photoID).jpg")) }
                return try await group.reduce(into: [Int: TestService.Reply]()) { $0[$1.0] = $1.1 }
            }
            XCTAssertEqual(service.ml.renderedPaths, [photo.path], "one render for the photo")
            for (index, detection) in detections.enumerated() {
                XCTAssertEqual(replies[index]?.status, .ok)
                let box = [detection.bbox.x1, detection.bbox.y1, detection.bbox.x2, detection.bbox.y2]
                XCTAssertEqual(replies[index].flatMap { label(of: $0.body) }, "render \(photo.path) box \(box)")
            }
            XCTAssertEqual(replies[-1].flatMap { label(of: $0.body) }, "render preview \(photo.path)")
            for detection in detections {
                _ = try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")
            }
            XCTAssertEqual(service.ml.renderedPaths.count, 1, "stored images are not rendered again")
        }
    }

    /// A reprocess stores the images its results bring (a library from before thumbnails gets them all) and drops
    /// those of boxes no face has any more.
    static func reprocessStoresNewImagesAndDropsOrphans(_ flavor: DatabaseFlavor) async throws {
        var behaviour = FakeMLService.Behaviour()
        behaviour.sendsImages = false
        try await TestService.run(flavor, ml: behaviour) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let withFaces = try await service.photos().first { $0.status == .processed && $0.noFaces == false }
            let photo = try XCTUnwrap(withFaces)
            try await MediaStore.storeThumbnail(FakeMLService.labelledJPEG("orphan"), photo: photo.photoID,
                                                box: BoundingBox(x1: 1, y1: 1, x2: 2, y2: 2), on: service.services.database.sql)
            service.ml.sendImages(true)
            let status = try await ModelScenarios.reprocess(service, body: "{}")
            XCTAssertEqual(status.status, "COMPLETED")
            for photo in try await service.photos() where photo.status == .processed {
                for detection in try await service.photo(photo.photoID).detections ?? [] {
                    let reply = try await service.request(.GET, "/thumbnails/face/\(detection.embeddingID).jpg")
                    XCTAssertTrue(label(of: reply.body)?.hasPrefix("callback ") == true, "face \(detection.embeddingID): \(reply.status)")
                }
            }
            XCTAssertEqual(service.ml.renderedPaths, [], "every image came with the reprocess's results")
            let orphans = try await service.services.database.sql.raw("""
                SELECT COUNT(*) AS n FROM face_thumbnails WHERE bbox_x2 = 2 AND bbox_y2 = 2
                """).first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(orphans, 0)
        }
    }

    /// GET / is the page, with its scripts and styles from the package, a strict content security policy, and
    /// the settings it reads; an unknown file is a 404.
    static func webPageIsServedWithItsFiles(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, tune: { $0.allowedRoots = ["/photos"] }) { service in
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
    static func crossSiteWritesAreRefused(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
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
    static func apiTokenGuardsEveryPageAndCall(_ flavor: DatabaseFlavor) async throws {
        let token = "token-0123456789abcdef"
        try await TestService.run(flavor, tune: { $0.apiToken = token; $0.sharedSecret = "ml-secret" }) { service in
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
    static func jobFailuresListEachPhotoWithItsReason(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, tune: { $0.maxRetries = 0 }) { service in
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

    private static func asyncFirst<T: Sendable>(_ items: [T], where predicate: (T) async throws -> Bool) async throws -> T? {
        for item in items where try await predicate(item) { return item }
        return nil
    }

    private static func waitUntilDone(_ jobID: String, _ service: TestService, headers: [(String, String)]) async throws -> IngestStatus {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let status = try await service.request(.GET, "/ingest-status/\(jobID)", headers: headers).decode(IngestStatus.self)
            if status.done { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestService.UnexpectedReply(description: "job \(jobID) did not finish in 60 s")
    }
}
