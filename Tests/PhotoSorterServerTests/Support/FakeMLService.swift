import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import PhotoSorterCore
import PhotoSorterTestSupport
import Vapor

/// Stand-in for the Python ML service in this target's tests only: a real HTTP server that accepts
/// POST /process-photo and calls back with the real dlib embeddings recorded in the fixture for that file.
/// Misbehaviour (errors, busy answers, lost callbacks) is switched on per test, and so is the model it claims
/// to run (`FakeModel`).
final class FakeMLService: Sendable {
    struct Behaviour: Sendable {
        /// Answer this many requests with 500 before behaving.
        var failFirst = 0
        /// Answer this many requests with 429 + Retry-After before behaving.
        var busyFirst = 0
        /// Accept but never call back for this many requests (a crashed worker).
        var dropFirst = 0
        var model = FakeModel.dlib
        /// Send a thumbnail per face and a preview with each result, as the real service does by default.
        /// Off: a service from before thumbnails; the Swift service then asks POST /render.
        var sendsImages = true
        /// Send each fixture photo's date (`FakeMLService.takenDate(of:)`) in its result and from POST /taken-dates,
        /// as the real service does for photos with EXIF. Off: photos without dates of their own.
        var sendsDates = true
        /// Names XMP face regions give faces, by fixture photo (relative to the faces folder) and face index: sent
        /// as each detection's `xmp_name`, as the real service does for a photo with a named region on that face.
        var xmpNames: [String: [Int: String]] = [:]
        /// `embedding_norm` of each face, by fixture photo prefix (a file or a folder, relative to the faces folder);
        /// faces not listed are sent with 25, an ArcFace face of good quality.
        var embeddingNorms: [String: Double] = [:]
    }

    /// The model the fake claims to run. `.arcface` sends each fixture vector repeated four times (512 values)
    /// labelled as ArcFace: cosine similarities stay exactly those of the dlib vectors, so a test that sets the
    /// thresholds explicitly gets the same grouping from either model.
    enum FakeModel: Sendable {
        case dlib, arcface

        var name: String { self == .dlib ? "dlib" : "arcface" }
        var modelVersion: String { self == .dlib ? "dlib-resnet-v1+hog-5pt" : "arcface-w600k_mbf+scrfd-500m-5pt" }

        func embedding(_ face: EmbeddingFixture.Face) -> String {
            guard self == .arcface else { return face.base64 }
            let repeated = try! Embedding(normalising: Array(repeating: face.embedding.values, count: 4).flatMap { $0 })
            return EmbeddingCodec.base64(repeated)
        }
    }

    let app: Application
    private let behaviour: NIOLockedValueBox<Behaviour>
    private let requests = NIOLockedValueBox([Int64]())
    private let renderRequests = NIOLockedValueBox([String]())
    private let takenDateRequests = NIOLockedValueBox([[String]]())
    private let fixture = EmbeddingFixture.shared

    private init(app: Application, behaviour: Behaviour) {
        self.app = app
        self.behaviour = NIOLockedValueBox(behaviour)
    }

    static func start(_ behaviour: Behaviour = Behaviour()) async throws -> FakeMLService {
        let app = try await Application.make(Environment(name: "testing", arguments: ["photo-sorter-tests", "serve"]))
        app.logger.logLevel = .warning
        app.http.server.configuration.hostname = "127.0.0.1"
        app.http.server.configuration.port = 0
        let service = FakeMLService(app: app, behaviour: behaviour)
        app.post("process-photo") { req async throws -> Response in try await service.processPhoto(req) }
        app.get("health") { _ in ["status": "ok", "model": service.behaviour.withLockedValue { $0.model.name }] }
        app.post("embeddings", "from-image") { req async throws -> Response in try await service.analyse(req) }
        app.post("render") { req async throws -> Response in try await service.render(req) }
        app.post("taken-dates") { req async throws -> Response in try await service.takenDates(req) }
        try await app.startup()
        return service
    }

    /// Accepts the next `count` requests without ever calling back.
    func dropNext(_ count: Int) { behaviour.withLockedValue { $0.dropFirst = count } }

    /// Starts or stops sending thumbnails and previews, as upgrading the real service would.
    func sendImages(_ on: Bool) { behaviour.withLockedValue { $0.sendsImages = on } }

    /// Starts or stops reporting dates, as photos with and without EXIF would.
    func sendDates(_ on: Bool) { behaviour.withLockedValue { $0.sendsDates = on } }

    /// The paths of each POST /taken-dates, in order.
    var takenDatePaths: [[String]] { takenDateRequests.withLockedValue { $0 } }

    /// The date the fake reports for a fixture photo: spread over 2010–2019 by its place in the fixture, with an
    /// offset on every other one.
    static func takenDate(of relative: String) -> TakenDate? {
        guard let index = EmbeddingFixture.shared.photos.firstIndex(where: { $0.path == relative }) else { return nil }
        let local = String(format: "%04d-%02d-%02dT%02d:%02d:00", 2010 + index % 10, 1 + index % 12, 1 + index % 28, index % 24, index % 60)
        return try! TakenDate(local: local, offset: index % 2 == 0 ? "+01:00" : nil, source: .exif)
    }

    /// Switches the model the fake runs, as restarting the real service with another PHOTO_SORTER_ML_MODEL would.
    func run(_ model: FakeModel) { behaviour.withLockedValue { $0.model = model } }

    /// From now on, the names XMP regions give the faces of fixture photos (`Behaviour.xmpNames`).
    func nameFaces(_ names: [String: [Int: String]]) { behaviour.withLockedValue { $0.xmpNames = names } }

    var url: String { "http://127.0.0.1:\(app.http.server.shared.localAddress!.port!)" }
    var requestedPhotoIDs: [Int64] { requests.withLockedValue { $0 } }
    /// Paths POST /render was asked for, in order.
    var renderedPaths: [String] { renderRequests.withLockedValue { $0 } }

    func stop() async throws { try await app.asyncShutdown() }

    private struct ProcessPhoto: Content {
        var photo_id: Int64
        var path: String
        var callbackUrl: String
        var callback_id: String?
    }

    private func processPhoto(_ req: Request) async throws -> Response {
        let body = try req.content.decode(ProcessPhoto.self)
        requests.withLockedValue { $0.append(body.photo_id) }
        enum Action { case fail, busy, drop, process }
        let action: Action = behaviour.withLockedValue { b in
            if b.failFirst > 0 { b.failFirst -= 1; return .fail }
            if b.busyFirst > 0 { b.busyFirst -= 1; return .busy }
            if b.dropFirst > 0 { b.dropFirst -= 1; return .drop }
            return .process
        }
        switch action {
        case .fail: return Response(status: .internalServerError, body: "simulated model crash")
        case .busy:
            let response = Response(status: .tooManyRequests, body: "queue full")
            response.headers.add(name: "Retry-After", value: "0.2")
            return response
        case .drop: return Response(status: .accepted)
        case .process:
            let client = req.application.http.client.shared
            let callback = callbackBody(for: body)
            // The real service is configured with the same secret the Swift service sends it.
            let secret = req.headers.first(name: "X-Photo-Sorter-Secret")
            Task {
                var request = HTTPClientRequest(url: body.callbackUrl)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                if let secret { request.headers.add(name: "X-Photo-Sorter-Secret", value: secret) }
                request.body = .bytes(ByteBuffer(data: callback))
                _ = try? await client.execute(request, timeout: .seconds(30))
            }
            return Response(status: .accepted)
        }
    }

    /// Synchronous analysis: the fixture's faces for the file, or 422 when it has none on record.
    private func analyse(_ req: Request) async throws -> Response {
        struct Body: Content { var path: String }
        let path = try req.content.decode(Body.self).path
        let request = ProcessPhoto(photo_id: 0, path: path, callbackUrl: "", callback_id: nil)
        var body = try JSONSerialization.jsonObject(with: callbackBody(for: request)) as! [String: Any]
        guard body["status"] as? String == "PROCESSED" else {
            return Response(status: .unprocessableEntity, body: .init(string: body["error"] as? String ?? "undecodable"))
        }
        body = body.filter { ["width", "height", "detections", "meta", "taken"].contains($0.key) }
        return Response(status: .ok, headers: ["Content-Type": "application/json"],
                        body: .init(data: try JSONSerialization.data(withJSONObject: body)))
    }

    /// POST /taken-dates: each fixture photo's date (none when dates are off); an error for a path that is no file.
    private func takenDates(_ req: Request) async throws -> Response {
        struct Body: Content { var paths: [String] }
        let paths = try req.content.decode(Body.self).paths
        takenDateRequests.withLockedValue { $0.append(paths) }
        let sendsDates = behaviour.withLockedValue { $0.sendsDates }
        let dates: [[String: Any]] = paths.map { path in
            guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return ["path": path, "taken": NSNull(), "error": "no such file"] }
            let taken = sendsDates ? Self.fixturePathsByDigest[SHA256.hash(data: data).hex].flatMap(Self.takenDate(of:)) : nil
            return ["path": path, "taken": taken.map(Self.json) ?? NSNull(), "error": NSNull()]
        }
        return Response(status: .ok, headers: ["Content-Type": "application/json"],
                        body: .init(data: try JSONSerialization.data(withJSONObject: ["dates": dates])))
    }

    private static func json(_ taken: TakenDate) -> [String: Any] {
        ["local": taken.local, "offset": taken.offset ?? NSNull(), "source": taken.source.rawValue]
    }

    /// POST /render: a labelled JPEG per box and a preview; slow enough (50 ms) that concurrent requests overlap.
    private func render(_ req: Request) async throws -> Response {
        struct Body: Content { var path: String; var boxes: [[Int]] }
        let body = try req.content.decode(Body.self)
        renderRequests.withLockedValue { $0.append(body.path) }
        try await Task.sleep(for: .milliseconds(50))
        let answer: [String: Any] = [
            "width": 250, "height": 250, "preview_width": 250, "preview_height": 250,
            "preview": Self.labelledJPEG("render preview \(body.path)").base64EncodedString(),
            "thumbnails": body.boxes.map { Self.labelledJPEG("render \(body.path) box \($0)").base64EncodedString() },
        ]
        return Response(status: .ok, headers: ["Content-Type": "application/json"],
                        body: .init(data: try JSONSerialization.data(withJSONObject: answer)))
    }

    /// A real (2×2) JPEG carrying `label` in a comment segment, so a test can tell which image it was served.
    static func labelledJPEG(_ label: String) -> Data {
        let jpeg = Data(base64Encoded: tinyJPEG)!
        let text = Data(label.utf8)
        let length = UInt16(text.count + 2)
        return jpeg.prefix(2) + Data([0xFF, 0xFE, UInt8(length >> 8), UInt8(length & 0xFF)]) + text + jpeg.dropFirst(2)
    }

    private static let tinyJPEG = """
        /9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAACAAIDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDPooormOg//9k=
        """

    /// Fixture photos by content digest, so copies of test photos elsewhere are recognised too.
    private static let fixturePathsByDigest: [String: String] = {
        var paths: [String: String] = [:]
        for photo in EmbeddingFixture.shared.photos {
            if let data = try? Data(contentsOf: EmbeddingFixture.facesRoot.appendingPathComponent(photo.path)) {
                paths[SHA256.hash(data: data).hex] = photo.path
            }
        }
        return paths
    }()

    /// Fixture photos' bytes, for content that is a fixture photo with bytes appended after its end.
    private static let fixtureContents: [(data: Data, path: String)] = EmbeddingFixture.shared.photos.compactMap { photo in
        (try? Data(contentsOf: EmbeddingFixture.facesRoot.appendingPathComponent(photo.path))).map { ($0, photo.path) }
    }

    /// The fixture photo a file shows: the same bytes, or a fixture JPEG with bytes appended after its end (decoders
    /// stop at the image's end, so the real service finds the same faces in it).
    static func fixturePath(ofContent data: Data) -> String? {
        Self.fixturePathsByDigest[SHA256.hash(data: data).hex]
            ?? fixtureContents.first { $0.data.count < data.count && data.starts(with: $0.data) }?.path
    }

    /// The callback the real service would send: fixture detections for the file's content, or FAILED.
    private func callbackBody(for request: ProcessPhoto) -> Data {
        let relative = (try? Data(contentsOf: URL(fileURLWithPath: request.path))).flatMap(Self.fixturePath(ofContent:)) ?? request.path
        let model = behaviour.withLockedValue { $0.model }
        var body: [String: Any] = ["photo_id": request.photo_id, "path": request.path, "callback_id": request.callback_id as Any,
                                   "meta": ["model_version": model.modelVersion, "timings": ["total_ms": 10.0]]]
        if let photo = fixture.photo(relative) {
            body["status"] = "PROCESSED"
            body["width"] = 250
            body["height"] = 250
            let (sendsImages, names, norms) = behaviour.withLockedValue { ($0.sendsImages, $0.xmpNames[relative] ?? [:], $0.embeddingNorms) }
            let norm = norms.first { relative.hasPrefix($0.key) }?.value ?? 25
            body["detections"] = photo.faces.enumerated().map { index, face in
                var detection: [String: Any] = ["bbox": face.bbox.array, "embedding": model.embedding(face), "confidence": 1.0,
                                                "embedding_norm": norm]
                if let name = names[index] { detection["xmp_name"] = name }
                if sendsImages { detection["thumbnail"] = Self.labelledJPEG("callback \(relative) face \(index)").base64EncodedString() }
                return detection
            }
            if sendsImages {
                body["preview"] = Self.labelledJPEG("callback \(relative) preview").base64EncodedString()
                body["preview_width"] = 250
                body["preview_height"] = 250
            }
            body["new_persons"] = []
            if behaviour.withLockedValue({ $0.sendsDates }), let taken = Self.takenDate(of: relative) { body["taken"] = Self.json(taken) }
        } else {
            body["status"] = "FAILED"
            body["error"] = "cannot identify image file \(request.path)"
            body["detections"] = []
        }
        return try! JSONSerialization.data(withJSONObject: body)
    }
}

extension FakeMLService {
    /// A PROCESSED result for `photoID` as the ML service posts it to POST /callback/photo-processed, carrying `faces`
    /// as `model` would send them: for tests that post results themselves.
    static func callback(photoID: Int64, callbackID: String?, faces: [EmbeddingFixture.Face],
                         model: FakeMLService.FakeModel = .dlib) -> Data {
        let body: [String: Any] = [
            "photo_id": photoID, "callback_id": callbackID as Any, "status": "PROCESSED", "width": 250, "height": 250,
            "detections": faces.map { ["bbox": $0.bbox.array, "embedding": model.embedding($0), "confidence": 0.9] },
            "new_persons": [], "meta": ["model_version": model.modelVersion],
        ]
        return try! JSONSerialization.data(withJSONObject: body)
    }
}
