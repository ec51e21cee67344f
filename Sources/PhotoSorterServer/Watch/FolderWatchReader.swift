import Foundation
import Logging
import NIOConcurrencyHelpers

/// The thread that reads inotify. Reading waits in `poll(2)` with a timeout on a thread of its own, so it never holds
/// an event loop or a thread of Swift's cooperative pool, and it notices `stop()` within `pollMs`.
///
/// Each turn hands one batch of `WatchEvent`s to `deliver` — an empty batch when nothing came within `pollMs`, so the
/// receiver also gets a steady tick. A batch `deliver` could not take (its buffer full) means lost events: the next
/// batch starts with `.overflow`, as if the kernel's queue had overflowed.
final class FolderWatchReader: Sendable {
    struct Counts: Sendable {
        var eventsSeen = 0
        var watches = 0
        var lostRoots: [String] = []
    }

    private struct Shared {
        var rootsToFollow: [String] = []
        var rewatchRequested = false
        var stopped = false
        var counts = Counts()
    }

    static let pollMs: Int32 = 200
    /// How often a root that is gone (unplugged, renamed away) is looked for again.
    static let lostRootRetrySeconds = 5.0
    private let shared = NIOLockedValueBox(Shared())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    var counts: Counts { shared.withLockedValue { $0.counts } }

    /// Watches `root` and every folder below it from the next turn on.
    func follow(_ root: String) { shared.withLockedValue { $0.rootsToFollow.append(root) } }

    /// Watches every folder below the roots again (after an overflow may have lost the creation of some).
    func rewatch() { shared.withLockedValue { $0.rewatchRequested = true } }

    func stop() { shared.withLockedValue { $0.stopped = true } }

    /// Opens inotify and starts the thread.
    func start(deliver: @escaping @Sendable ([WatchEvent]) -> Bool) throws(InotifyError) {
        // Handed to the thread and used by it alone from then on.
        nonisolated(unsafe) let tree = WatchedTree(inotify: try Inotify())
        let thread = Thread { self.loop(tree, deliver: deliver) }
        thread.name = "photo-sorter inotify"
        thread.start()
    }

    private func loop(_ tree: WatchedTree, deliver: @Sendable ([WatchEvent]) -> Bool) {
        var lastRetry = Self.now()
        var lostBatch = false
        while true {
            let (stopped, newRoots, rewatch) = shared.withLockedValue { shared in
                defer { shared.rootsToFollow = []; shared.rewatchRequested = false }
                return (shared.stopped, shared.rootsToFollow, shared.rewatchRequested)
            }
            if stopped { return }
            var batch: [WatchEvent] = lostBatch ? [.overflow] : []
            for root in newRoots { batch += tree.follow(root: root) }
            if rewatch { for (root, watched) in tree.roots where watched { batch += tree.rewatch(root) } }
            if Self.now() - lastRetry >= Self.lostRootRetrySeconds {
                lastRetry = Self.now()
                for root in tree.lostRoots { batch += tree.rewatch(root) }
            }
            var seen = 0
            do {
                let events = try tree.read(timeoutMs: Self.pollMs)
                seen = events.count
                batch += tree.translate(events, now: Self.now())
            } catch {
                logger.error("reading inotify failed", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: Double(Self.pollMs) / 1000)
            }
            batch += tree.unpairedMoves(now: Self.now())
            shared.withLockedValue { shared in
                shared.counts.eventsSeen += seen
                shared.counts.watches = tree.watchCount
                shared.counts.lostRoots = tree.lostRoots
            }
            lostBatch = !deliver(batch)
        }
    }

    /// Monotonic seconds.
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
