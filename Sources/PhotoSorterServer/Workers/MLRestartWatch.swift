import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

/// When the ML services last (re)started, from the `uptime_s` of their `GET /health`. A photo handed over before
/// every one of them started was held by a process that is gone (killed, crashed, restarted), and its result will
/// never come: the stale-PROCESSING scheduler retries it at once instead of after the processing timeout.
struct MLRestartWatch: Sendable {
    let http: HTTPClient
    let baseURLs: [String]

    /// The start time (ms since 1970, on this machine's clock) of the ML service that has been up the longest; nil
    /// when one of them does not answer or reports no uptime (nothing is known about the photos it may hold).
    func earliestStartMs() async -> Int64? {
        var earliest: Int64?
        for base in baseURLs {
            var request = HTTPClientRequest(url: (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/health")
            request.method = .GET
            guard let response = try? await http.execute(request, timeout: .seconds(2)), response.status == .ok,
                  let body = try? await response.body.collect(upTo: 1024 * 1024),
                  let health = try? JSONDecoder().decode(Health.self, from: Data(buffer: body)) else { return nil }
            let started = nowMs() - Int64(health.uptimeSeconds * 1000)
            earliest = min(earliest ?? started, started)
        }
        return earliest
    }

    private struct Health: Decodable {
        let uptimeSeconds: Double
        enum CodingKeys: String, CodingKey { case uptimeSeconds = "uptime_s" }
    }
}
