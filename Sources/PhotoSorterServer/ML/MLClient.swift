import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import PhotoSorterCore

/// What happened when a photo was handed to the ML service.
public enum MLDispatchOutcome: Sendable, Equatable {
    /// 202: queued; the result arrives through the callback.
    case accepted
    /// 429/503: the service is busy or still loading. Not a failure: try again after the delay.
    case busy(retryAfterSeconds: Double)
    /// No service could be reached (connection refused, timeout), or all are backing off after that. Not the
    /// photo's failure either: it waits until one answers again.
    case unavailable(String)
    /// The service refused this photo (another status): the photo fails with this text.
    case failed(String)
}

/// HTTP client of the Python ML services (`/process-photo`, `/embeddings/from-image`, `/render`). With several
/// service URLs each request goes to the least busy one (`MLServicePool`); one that answers 429/503 or cannot be
/// reached is left alone until its back-off ends, and a photo it refused goes to the next one at once.
public final class MLClient: Sendable {
    private let http: HTTPClient
    private let pool: MLServicePool
    private let sharedSecret: String?
    private let timeout: TimeAmount

    public init(http: HTTPClient, baseURLs: [String], sharedSecret: String?, timeoutSeconds: Double) {
        self.http = http
        self.pool = MLServicePool(baseURLs: baseURLs.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 })
        self.sharedSecret = sharedSecret
        self.timeout = .milliseconds(Int64(timeoutSeconds * 1000))
    }

    /// Per service: requests in flight and back-off, as the pool sees them now.
    public var servicesStatus: [MLServicePool.ServiceStatus] { pool.status() }

    private struct ProcessPhotoRequest: Encodable {
        let photo_id: Int64
        let path: String
        let callbackUrl: String
        let callback_id: String
    }

    /// POST /process-photo to the least busy service; a busy or unreachable one is backed off and the next one tried.
    /// Never throws: every problem becomes an outcome the worker acts on.
    public func process(_ item: WorkItem, callbackURL: String) async -> MLDispatchOutcome {
        let body: Data
        do {
            body = try JSONEncoder().encode(ProcessPhotoRequest(photo_id: item.photoID, path: item.path, callbackUrl: callbackURL,
                                                                callback_id: "p\(item.photoID)-a\(item.attempt)"))
        } catch {
            return .failed("cannot encode the request: \(error)")
        }
        var tried = Set<String>()
        var busyFor: Double?
        var lastFailure = "every ML service is backing off (busy, or not answering)"
        while let base = pool.acquire(excluding: tried) {
            tried.insert(base)
            defer { pool.release(base) }
            do {
                let response = try await post("\(base)/process-photo", json: body)
                let status = Int(response.status.code)
                switch status {
                case 200..<300:
                    let answer = try? await response.body.collect(upTo: 64 * 1024)
                    pool.accepted(base, queueDepth: answer.flatMap { try? JSONDecoder().decode(Accepted.self, from: Data(buffer: $0)) }?.queueDepth)
                    return .accepted
                case 429, 503:
                    let delay = max(0.1, response.headers.first(name: "Retry-After").flatMap(Double.init) ?? 1)
                    pool.backOff(base, seconds: delay)
                    busyFor = min(busyFor ?? delay, delay)
                default:
                    // The service read the request and refused this photo: another service would too.
                    let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
                    return .failed("ML service \(base) answered \(status): \(text.prefix(500))")
                }
            } catch {
                pool.unreachable(base)
                lastFailure = "ML service \(base) unreachable: \(error)"
            }
        }
        if let busyFor { return .busy(retryAfterSeconds: busyFor) }
        return .unavailable(lastFailure)
    }

    /// POST /embeddings/from-image `{path}`: synchronous analysis, returned as the callback's shape.
    public func analyse(path: String) async throws -> (status: Int, body: Data) {
        let base = pool.pick()
        do {
            let response = try await post("\(base)/embeddings/from-image", json: try JSONEncoder().encode(["path": path]), timeout: .seconds(300))
            let buffer = try await response.body.collect(upTo: 16 * 1024 * 1024)
            return (Int(response.status.code), Data(buffer: buffer))
        } catch {
            throw PhotoSorterError.mlServiceUnavailable("\(base): \(error)")
        }
    }

    /// POST /render `{path, boxes, quarter_turns}`: a preview of the photo and a thumbnail per box, for photos
    /// analysed before the ML service sent them; `quarterTurns` turns the photo as its analysis did. Waits out a
    /// busy service (429/503) a few times, as its Retry-After says.
    public func render(path: String, quarterTurns: Int = 0, boxes: [BoundingBox]) async throws -> RenderedImages {
        let base = pool.pick()
        let body = try JSONEncoder().encode(RenderRequest(path: path, boxes: boxes.map { [$0.x1, $0.y1, $0.x2, $0.y2] },
                                                          quarterTurns: quarterTurns))
        for attempt in 1...5 {
            let response: HTTPClientResponse
            let buffer: ByteBuffer
            do {
                response = try await post("\(base)/render", json: body, timeout: .seconds(120))
                buffer = try await response.body.collect(upTo: 32 * 1024 * 1024)
            } catch {
                throw PhotoSorterError.mlServiceUnavailable("\(base): \(error)")
            }
            let status = Int(response.status.code)
            if (status == 429 || status == 503) && attempt < 5 {
                let delay = min(2.0, max(0.1, response.headers.first(name: "Retry-After").flatMap(Double.init) ?? 0.5))
                try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                continue
            }
            guard status == 200 else {
                throw PhotoSorterError.mlServiceRejected(status: status, reason: String(buffer: buffer).prefix(500).description)
            }
            do { return try JSONDecoder().decode(RenderedImages.self, from: Data(buffer: buffer)) } catch {
                throw PhotoSorterError.mlServiceRejected(status: status, reason: "unreadable render answer: \(error)")
            }
        }
        throw PhotoSorterError.mlServiceUnavailable("\(base) stayed busy")
    }

    /// POST /taken-dates `{paths}` (at most `takenDatesBatch`): when each photo was taken, read from its header
    /// without analysing it. One answer per path, in order.
    public func takenDates(paths: [String]) async throws -> [TakenDateAnswer] {
        let base = pool.pick()
        let response: HTTPClientResponse
        let buffer: ByteBuffer
        do {
            response = try await post("\(base)/taken-dates", json: try JSONEncoder().encode(["paths": paths]), timeout: .seconds(120))
            buffer = try await response.body.collect(upTo: 8 * 1024 * 1024)
        } catch {
            throw PhotoSorterError.mlServiceUnavailable("\(base): \(error)")
        }
        let status = Int(response.status.code)
        guard status == 200 else { throw PhotoSorterError.mlServiceRejected(status: status, reason: String(buffer: buffer).prefix(500).description) }
        let answers: [TakenDateAnswer]
        do { answers = try JSONDecoder().decode(TakenDates.self, from: Data(buffer: buffer)).dates } catch {
            throw PhotoSorterError.mlServiceRejected(status: status, reason: "unreadable taken-dates answer: \(error)")
        }
        guard answers.map(\.path) == paths else {
            throw PhotoSorterError.mlServiceRejected(status: status, reason: "taken-dates answered other paths than asked")
        }
        return answers
    }

    public static let takenDatesBatch = 500

    /// One photo's entry of the /taken-dates answer: its date (nil when it carries none) or why it could not be read.
    public struct TakenDateAnswer: Decodable, Sendable {
        public let path: String
        public let taken: TakenDate?
        public let error: String?
    }

    private struct TakenDates: Decodable {
        let dates: [TakenDateAnswer]
    }

    /// The 202 answer of /process-photo.
    private struct Accepted: Decodable {
        let queueDepth: Int?

        enum CodingKeys: String, CodingKey { case queueDepth = "queue_depth" }
    }

    private struct RenderRequest: Encodable {
        let path: String
        let boxes: [[Int]]
        let quarterTurns: Int

        enum CodingKeys: String, CodingKey {
            case path, boxes
            case quarterTurns = "quarter_turns"
        }
    }

    /// GET /health of the first service: nil when nothing answers.
    public func health(of base: String? = nil) async -> [String: JSONAnyValue]? {
        var request = HTTPClientRequest(url: "\(base ?? pool.baseURLs[0])/health")
        request.method = .GET
        guard let response = try? await http.execute(request, timeout: .seconds(2)), response.status == .ok,
              let buffer = try? await response.body.collect(upTo: 1024 * 1024) else { return nil }
        return try? JSONDecoder().decode([String: JSONAnyValue].self, from: Data(buffer: buffer))
    }

    /// Whether anything accepts connections at the first service's host and port. Nothing listening answers at once
    /// (connection refused), where an HTTP request keeps retrying until its connect timeout (2 s): `sort` asks this
    /// before starting an ML service and while waiting for the one it started.
    public func listens() async -> Bool {
        await Self.listens(at: pool.baseURLs[0], group: http.eventLoopGroup)
    }

    /// `listens()` for a service URL, before any client exists (`sort` asks before it opens the database).
    public static func listens(at baseURL: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async -> Bool {
        guard let url = URL(string: baseURL), let host = url.host else { return false }
        do {
            let channel = try await ClientBootstrap(group: group).connectTimeout(.seconds(1))
                .connect(host: host, port: url.port ?? (url.scheme == "https" ? 443 : 80)).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }

    /// When the ML services last (re)started, from the `uptime_s` of their health documents: the start time (ms since
    /// 1970, this machine's clock) of the one up the longest. A photo handed over before every one of them started was
    /// held by a process that is gone (killed, crashed, restarted) and its result will never come, so the
    /// stale-PROCESSING scheduler retries it at once instead of after the processing timeout. Nil when one of them
    /// does not answer or reports no uptime (nothing is known about the photos it may hold).
    public func earliestStartMs() async -> Int64? {
        var earliest: Int64?
        for base in pool.baseURLs {
            guard case .number(let uptime)? = await health(of: base)?["uptime_s"] else { return nil }
            let started = nowMs() - Int64(uptime * 1000)
            earliest = min(earliest ?? started, started)
        }
        return earliest
    }

    /// The face model the first service runs (`model` in its health document), nil when it does not answer.
    public func model() async -> String? {
        if case .string(let name)? = await health()?["model"] { return name }
        return nil
    }

    private func post(_ url: String, json: Data, timeout: TimeAmount? = nil) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let sharedSecret { request.headers.add(name: "X-Photo-Sorter-Secret", value: sharedSecret) }
        request.body = .bytes(ByteBuffer(data: json))
        return try await http.execute(request, timeout: timeout ?? self.timeout)
    }
}

/// Answer of the ML service's POST /render: base64 JPEGs.
public struct RenderedImages: Decodable, Sendable {
    public var preview: String
    public var previewWidth: Int
    public var previewHeight: Int
    /// One per requested box, in order.
    public var thumbnails: [String]

    enum CodingKeys: String, CodingKey {
        case preview, thumbnails
        case previewWidth = "preview_width"
        case previewHeight = "preview_height"
    }
}

/// A loosely typed JSON value, for reading the ML service's health document.
public enum JSONAnyValue: Decodable, Sendable {
    case number(Double), string(String), bool(Bool), other

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Double.self) { self = .number(v) }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else { self = .other }
    }

    public var number: Double? { if case .number(let v) = self { v } else { nil } }
    public var string: String? { if case .string(let v) = self { v } else { nil } }
}
