import Foundation
import NIOConcurrencyHelpers

/// Which ML service gets the next photo, when several run (`PHOTO_SORTER_ML_URL=a,b,…`): the least busy one — the
/// smallest queue it last reported (`queue_depth` in its 202 answer) plus the requests on their way to it — among
/// those not backing off. A service that answers 429/503 backs off for its Retry-After; one that cannot be reached
/// for 0.5 s, doubling with each failure in a row up to 30 s. Ties go round-robin, so idle services share the work.
public final class MLServicePool: Sendable {
    /// One service as the pool sees it.
    public struct ServiceStatus: Sendable, Equatable, Codable {
        public var url: String
        public var inFlight: Int
        public var reportedQueueDepth: Int
        /// Seconds of back-off left; 0 when the service takes requests.
        public var backingOffSeconds: Double
        public var failuresInARow: Int

        enum CodingKeys: String, CodingKey {
            case url
            case inFlight = "in_flight"
            case reportedQueueDepth = "reported_queue_depth"
            case backingOffSeconds = "backing_off_seconds"
            case failuresInARow = "failures_in_a_row"
        }
    }

    private struct Entry {
        var inFlight = 0
        var queueDepth = 0
        var backOffUntil = 0.0
        var failuresInARow = 0
    }

    public let baseURLs: [String]
    private let entries: NIOLockedValueBox<(services: [Entry], cursor: Int)>
    private let now: @Sendable () -> Double

    public init(baseURLs: [String], now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.baseURLs = baseURLs
        self.entries = NIOLockedValueBox((Array(repeating: Entry(), count: baseURLs.count), 0))
        self.now = now
    }

    /// The least busy service that is not backing off and not in `excluded`, counted as one request more in
    /// flight until `release`; nil when every service is excluded or backing off.
    public func acquire(excluding excluded: Set<String> = []) -> String? {
        let time = now()
        return entries.withLockedValue { state -> String? in
            let count = baseURLs.count
            var best: Int?
            for step in 0..<count {
                let i = (state.cursor + step) % count
                let entry = state.services[i]
                guard !excluded.contains(baseURLs[i]), entry.backOffUntil <= time else { continue }
                if let b = best, state.services[b].inFlight + state.services[b].queueDepth <= entry.inFlight + entry.queueDepth { continue }
                best = i
            }
            guard let chosen = best else { return nil }
            state.services[chosen].inFlight += 1
            state.cursor = (chosen + 1) % count
            return baseURLs[chosen]
        }
    }

    /// For a one-off request (a synchronous analysis, a render): the least busy service, or, when all back off,
    /// the one whose back-off ends first. Not counted in flight.
    public func pick() -> String {
        let time = now()
        return entries.withLockedValue { state in
            let order = state.services.indices.sorted { a, b in
                let (x, y) = (state.services[a], state.services[b])
                let (waitX, waitY) = (max(0, x.backOffUntil - time), max(0, y.backOffUntil - time))
                return (waitX, x.inFlight + x.queueDepth, a) < (waitY, y.inFlight + y.queueDepth, b)
            }
            return baseURLs[order[0]]
        }
    }

    public func release(_ url: String) {
        update(url) { $0.inFlight = max(0, $0.inFlight - 1) }
    }

    /// The service accepted a photo and reported how many it now holds.
    public func accepted(_ url: String, queueDepth: Int?) {
        update(url) { entry in
            entry.failuresInARow = 0
            if let queueDepth { entry.queueDepth = max(0, queueDepth) }
        }
    }

    /// 429/503: leave the service alone for `seconds`.
    public func backOff(_ url: String, seconds: Double) {
        let until = now() + seconds
        update(url) { $0.backOffUntil = max($0.backOffUntil, until) }
    }

    /// Connection refused, reset or timed out.
    public func unreachable(_ url: String) {
        let time = now()
        update(url) { entry in
            entry.failuresInARow += 1
            entry.backOffUntil = time + min(30, 0.5 * pow(2, Double(entry.failuresInARow - 1)))
        }
    }

    public func status() -> [ServiceStatus] {
        let time = now()
        return entries.withLockedValue { state in
            zip(baseURLs, state.services).map { url, entry in
                ServiceStatus(url: url, inFlight: entry.inFlight, reportedQueueDepth: entry.queueDepth,
                              backingOffSeconds: max(0, entry.backOffUntil - time), failuresInARow: entry.failuresInARow)
            }
        }
    }

    private func update(_ url: String, _ change: (inout Entry) -> Void) {
        guard let index = baseURLs.firstIndex(of: url) else { return }
        entries.withLockedValue { change(&$0.services[index]) }
    }
}
