import Foundation

/// When `sort` reached each step, in ms since the command started: `timeline` in `--summary-json`, which
/// bench/startup reads to show where the time before the first photo in flight goes.
final class SortTimeline: @unchecked Sendable, Encodable {
    enum Step: String {
        case databaseReady = "database_ready_ms"  // opened and migrated, services built
        case mlSpawned = "ml_spawned_ms"  // the ML child started (absent when one already answered)
        case mlListening = "ml_listening_ms"  // the ML service answered /health
        case scanStarted = "scan_started_ms"
        case firstInFlight = "first_in_flight_ms"  // the first photo accepted by an ML service
        case lastCallback = "last_callback_ms"  // the last result of the sort arrived
        case sortDone = "sort_done_ms"  // `sort` saw every photo finished
    }

    /// ms since 1970, to put other clocks (the ML service's log) on this timeline.
    let startedAtMs = SortTimeline.nowMs()
    private let lock = NSLock()
    private var marks: [Step: Int64] = [:]

    /// Records `step` now; the first record of a step wins.
    func mark(_ step: Step) { mark(step, at: Self.nowMs()) }

    /// Records `step` at `ms` (ms since 1970); nothing when nil (the step never happened).
    func mark(_ step: Step, at ms: Int64?) {
        guard let ms else { return }
        lock.withLock { if marks[step] == nil { marks[step] = ms - startedAtMs } }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        try container.encode(startedAtMs, forKey: AnyKey("started_at_ms"))
        for (step, ms) in lock.withLock({ marks }) { try container.encode(ms, forKey: AnyKey(step.rawValue)) }
    }

    private struct AnyKey: CodingKey {
        let stringValue: String
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    private static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
