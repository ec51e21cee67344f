import Vapor

/// GET /watch: the library watcher (watch mode) — its roots, what it has seen and done.
struct WatchController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("watch", use: watch)
    }

    func watch(req: Request) async throws -> WatchStatus {
        req.photoSorter.watcher.status()
    }
}

/// What GET /watch answers. `active` is false (and `roots` empty) when the service follows no folder;
/// `last_reconciliation` is absent before the first.
public struct WatchStatus: Content, Sendable, Equatable {
    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        /// False while the root is gone, unreadable or unmounted (its photos are kept as they are).
        public var available: Bool
    }

    public struct LastReconciliation: Codable, Sendable, Equatable {
        /// When its scan started, milliseconds since 1970.
        public var at: Int64
        /// `start`, `periodic`, `queue overflow`, `watch limit` or `root back`.
        public var reason: String
        public var root: String
        public var jobID: String

        enum CodingKeys: String, CodingKey {
            case at, reason, root
            case jobID = "job_id"
        }
    }

    public var active: Bool
    public var roots: [Root]
    public var settleSeconds: Double
    public var reconcileSeconds: Double
    /// inotify events read since the watcher started.
    public var eventsSeen: Int
    /// Files still settling (being written, or written less than `settle_seconds` ago).
    public var pending: Int
    /// Folders waiting for their scan.
    public var foldersWaiting: Int
    public var scansStarted: Int
    /// inotify watches held (one per folder below the roots).
    public var watches: Int
    public var overflows: Int
    public var watchLimitHits: Int
    public var lastReconciliation: LastReconciliation?
    /// Sums over the watcher's scans since it started.
    public var moved: Int
    public var missing: Int
    public var restored: Int
    public var copies: Int

    enum CodingKeys: String, CodingKey {
        case active, roots, pending, watches, overflows, moved, missing, restored, copies
        case settleSeconds = "settle_seconds"
        case reconcileSeconds = "reconcile_seconds"
        case eventsSeen = "events_seen"
        case foldersWaiting = "folders_waiting"
        case scansStarted = "scans_started"
        case watchLimitHits = "watch_limit_hits"
        case lastReconciliation = "last_reconciliation"
    }
}
