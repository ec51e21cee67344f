import Foundation
import Logging
import NIOConcurrencyHelpers
import PhotoSorterCore
import SQLKit

/// The watch mode (`serve --watch`, `PHOTO_SORTER_WATCH_ROOTS`, `sort --watch`): follows the watch roots with Linux
/// inotify and keeps the library in step within seconds.
///
/// - Events go through a `SettleTracker`: a file is taken once its size and modification time have been stable for
///   `watchSettleSeconds`; the folders it says are due are scanned with `IngestService.startWatchScan` — a folder
///   with file events on its own, a new or moved-in folder recursively, a vanished folder at its gone path — with
///   the files still settling excluded.
/// - Scans run one at a time, in the order they became due (a file's new folder before its old one's sweep); a folder
///   already waiting for a scan is not queued twice.
/// - Reconciliation — a recursive scan of a whole root — is the safety net: when a root is first watched or comes
///   back, every `watchReconcileSeconds`, and at once after an inotify queue overflow or when the watch limit is hit.
public final class LibraryWatcher: Sendable {
    /// Why a root was reconciled.
    enum Reconciliation: String, Sendable {
        case start, periodic
        case overflow = "queue overflow"
        case watchLimit = "watch limit"
        case rootBack = "root back"
    }

    private struct ScanRequest: Sendable {
        let folder: String
        var recursive: Bool
        let root: String
        var reconciliation: Reconciliation?
    }

    private struct State: Sendable {
        var roots: [String] = []
        var watching = false
        var scanningStopped = false
        var everWatched: Set<String> = []
        var overflows = 0
        var watchLimitHits = 0
        var scansStarted = 0
        var lastReconciliation: WatchStatus.LastReconciliation?
        var moved = 0, missing = 0, restored = 0, copies = 0
    }

    private let ingest: IngestService
    private let database: PhotoSorterDatabase
    private let settleSeconds: Double
    private let reconcileSeconds: Double
    private let logger: Logger
    private let tracker: NIOLockedValueBox<SettleTracker>
    private let state = NIOLockedValueBox(State())
    private let scanQueue = NIOLockedValueBox([ScanRequest]())
    private let scanWake = AsyncSignal()
    private let rootsWake = AsyncSignal()
    private let reader: FolderWatchReader
    /// Batches of events waiting for the watcher; a full buffer counts as an overflow (see `FolderWatchReader`).
    static let bufferedBatches = 1024

    init(roots: [String], ingest: IngestService, database: PhotoSorterDatabase, settleSeconds: Double, reconcileSeconds: Double,
         logger: Logger) {
        self.ingest = ingest
        self.database = database
        self.settleSeconds = settleSeconds
        self.reconcileSeconds = reconcileSeconds
        self.logger = logger
        self.reader = FolderWatchReader(logger: logger)
        self.tracker = NIOLockedValueBox(SettleTracker(settleSeconds: settleSeconds, clock: FolderWatchReader.now,
                                                       stat: LibraryWatcher.fileState))
        roots.forEach(follow)
    }

    /// Follows `root` (made absolute and canonical when it is there) from now on; a root followed already is kept once.
    public func follow(_ root: String) {
        let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        let canonical = realpath(absolute, nil).map { resolved in defer { free(resolved) }; return String(cString: resolved) }
            ?? URL(fileURLWithPath: absolute).standardizedFileURL.path
        let added = state.withLockedValue { state in
            guard !state.roots.contains(canonical) else { return false }
            state.roots.append(canonical)
            return true
        }
        guard added else { return }
        reader.follow(canonical)
        Task { await rootsWake.signal() }
    }

    /// Starts no more scans (the service is shutting down; the group cancels `run` later).
    func stopScanning() {
        state.withLockedValue { $0.scanningStopped = true }
        Task { await scanWake.signal() }
    }

    /// What GET /watch answers.
    public func status() -> WatchStatus {
        let counts = reader.counts
        let (settling, waiting) = tracker.withLockedValue { ($0.settlingCount, $0.waitingFolderCount) }
        let queued = scanQueue.withLockedValue { $0.count }
        return state.withLockedValue { state in
            WatchStatus(active: state.watching && !state.roots.isEmpty,
                        roots: state.roots.map { WatchStatus.Root(path: $0, available: !counts.lostRoots.contains($0)) },
                        settleSeconds: settleSeconds, reconcileSeconds: reconcileSeconds,
                        eventsSeen: counts.eventsSeen, pending: settling, foldersWaiting: waiting + queued,
                        scansStarted: state.scansStarted, watches: counts.watches, overflows: state.overflows,
                        watchLimitHits: state.watchLimitHits, lastReconciliation: state.lastReconciliation,
                        moved: state.moved, missing: state.missing, restored: state.restored, copies: state.copies)
        }
    }

    /// Runs until the task is cancelled (the service group's graceful shutdown): waits for a root to follow, then
    /// reads events and runs the scans they call for.
    func run() async {
        while !Task.isCancelled && state.withLockedValue({ $0.roots.isEmpty }) { await Self.wait(for: rootsWake, upToMs: 60_000) }
        if Task.isCancelled { return }
        let (batches, continuation) = AsyncStream.makeStream(of: [WatchEvent].self, bufferingPolicy: .bufferingOldest(Self.bufferedBatches))
        do {
            try reader.start { batch in
                if case .dropped = continuation.yield(batch) { return false }
                return true
            }
        } catch {
            logger.error("watch mode cannot start: inotify is not available", metadata: ["error": "\(error)"])
            return
        }
        state.withLockedValue { $0.watching = true }
        let roots = state.withLockedValue { $0.roots }
        logger.notice("watching folders for changes", metadata: ["roots": "\(roots.joined(separator: ":"))",
                                                                 "settle_seconds": "\(settleSeconds)", "reconcile_seconds": "\(reconcileSeconds)"])
        await withDiscardingTaskGroup { group in
            group.addTask { await self.runScans() }
            var lastPeriodic = FolderWatchReader.now(), lastDueCheck = 0.0
            for await batch in batches {
                handle(batch)
                // Under a flood batches come every few milliseconds: the settling files are looked at once per tick.
                if FolderWatchReader.now() - lastDueCheck >= Double(FolderWatchReader.pollMs) / 1000 {
                    lastDueCheck = FolderWatchReader.now()
                    enqueue(tracker.withLockedValue { $0.dueScans() }.map { scan in
                        ScanRequest(folder: scan.folder, recursive: scan.recursive, root: root(of: scan.folder), reconciliation: nil)
                    })
                }
                if FolderWatchReader.now() - lastPeriodic >= reconcileSeconds {
                    lastPeriodic = FolderWatchReader.now()
                    reconcileAll(.periodic)
                }
            }
            group.cancelAll()
        }
        reader.stop()
        continuation.finish()
        state.withLockedValue { $0.watching = false }
    }

    private func handle(_ batch: [WatchEvent]) {
        for event in batch {
            switch event {
            case .fileChanged(let path): tracker.withLockedValue { $0.fileChanged(path) }
            case .fileRemoved(let path): tracker.withLockedValue { $0.fileRemoved(path) }
            case .folderAppeared(let path): tracker.withLockedValue { $0.folderAppeared(path) }
            case .folderVanished(let path): tracker.withLockedValue { $0.folderVanished(path) }
            case .rootWatched(let root):
                let first = state.withLockedValue { $0.everWatched.insert(root).inserted }
                if !first { logger.notice("watch root is back", metadata: ["root": "\(root)"]) }
                reconcile(root, first ? .start : .rootBack)
            case .rootLost(let root):
                // Its scan ends as ROOT_UNAVAILABLE: nothing is marked missing. The reader looks for the root again.
                logger.warning("watch root is gone or unmounted; its photos are kept as they are until it is back", metadata: ["root": "\(root)"])
                enqueue([ScanRequest(folder: root, recursive: true, root: root, reconciliation: nil)])
            case .overflow:
                let count = state.withLockedValue { state in state.overflows += 1; return state.overflows }
                logger.warning("inotify event queue overflowed: events were lost; reconciling every watch root now",
                               metadata: ["overflows": "\(count)"])
                reader.rewatch()
                reconcileAll(.overflow)
            case .watchLimit(let root, let folder):
                state.withLockedValue { $0.watchLimitHits += 1 }
                logger.warning("inotify watch limit reached (fs.inotify.max_user_watches): folders below it go unwatched; reconciling the root now",
                               metadata: ["root": "\(root)", "folder": "\(folder)"])
                reconcile(root, .watchLimit)
            }
        }
    }

    private func reconcileAll(_ why: Reconciliation) {
        state.withLockedValue { $0.roots }.forEach { reconcile($0, why) }
    }

    private func reconcile(_ root: String, _ why: Reconciliation) {
        enqueue([ScanRequest(folder: root, recursive: true, root: root, reconciliation: why)])
    }

    /// The root a folder is in (the longest root that holds it).
    private func root(of folder: String) -> String {
        state.withLockedValue { $0.roots }.filter { folder == $0 || folder.hasPrefix($0 == "/" ? "/" : $0 + "/") }
            .max { $0.count < $1.count } ?? folder
    }

    /// Queues scans; one for a folder already waiting is merged into it (recursive wins, a reconciliation keeps its reason).
    private func enqueue(_ requests: [ScanRequest]) {
        guard !requests.isEmpty else { return }
        scanQueue.withLockedValue { queue in
            for request in requests {
                if let index = queue.firstIndex(where: { $0.folder == request.folder }) {
                    queue[index].recursive = queue[index].recursive || request.recursive
                    queue[index].reconciliation = queue[index].reconciliation ?? request.reconciliation
                } else {
                    queue.append(request)
                }
            }
        }
        Task { await scanWake.signal() }
    }

    /// Runs the queued scans one at a time until cancelled: each scan's job is started, and the next waits until its
    /// scan has finished (its photos' analysis goes on in the workers).
    private func runScans() async {
        while !Task.isCancelled && !state.withLockedValue({ $0.scanningStopped }) {
            guard let request = scanQueue.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) else {
                await Self.wait(for: scanWake, upToMs: 1_000)
                continue
            }
            await scan(request)
        }
    }

    private func scan(_ request: ScanRequest) async {
        let unsettled = tracker.withLockedValue { $0.unsettled(in: request.folder, recursive: request.recursive) }
        let metadata: Logger.Metadata = ["folder": "\(request.folder)", "recursive": "\(request.recursive)",
                                         "root": "\(request.root)", "unsettled": "\(unsettled.count)"]
        do {
            let jobID = try await ingest.startWatchScan(folder: request.folder, recursive: request.recursive, root: request.root,
                                                        excluding: unsettled)
            state.withLockedValue { state in
                state.scansStarted += 1
                if let why = request.reconciliation {
                    state.lastReconciliation = .init(at: nowMs(), reason: why.rawValue, root: request.root, jobID: jobID)
                }
            }
            if let why = request.reconciliation {
                logger.info("reconciling watch root", metadata: metadata.merging(["reason": "\(why.rawValue)", "job_id": "\(jobID)"]) { $1 })
            } else {
                logger.debug("watch scan started", metadata: metadata.merging(["job_id": "\(jobID)"]) { $1 })
            }
            await ingest.waitForScan(jobID)
            try await countOutcome(of: jobID, metadata: metadata)
        } catch is CancellationError {
            return
        } catch {
            logger.error("watch scan failed", metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
    }

    private struct JobOutcome: Decodable {
        let status: String
        let movedCount: Int
        let missingCount: Int
        let restoredCount: Int
        let copiesCount: Int
    }

    /// Adds a finished scan's moved, missing, restored and copies counts to the watcher's.
    private func countOutcome(of jobID: String, metadata: Logger.Metadata) async throws {
        guard let job = try await database.sql.raw("""
            SELECT status, moved_count, missing_count, restored_count, copies_count FROM ingest_jobs WHERE job_id = \(bind: jobID)
            """).first(decoding: JobOutcome.self, keyDecodingStrategy: .convertFromSnakeCase) else { return }
        state.withLockedValue { state in
            state.moved += job.movedCount
            state.missing += job.missingCount
            state.restored += job.restoredCount
            state.copies += job.copiesCount
        }
        if job.status == "ROOT_UNAVAILABLE" {
            logger.warning("watch root unavailable: nothing was marked missing", metadata: metadata.merging(["job_id": "\(jobID)"]) { $1 })
        }
    }

    /// `signal.wait(upToMs:)` that also returns when the task is cancelled (the service shutting down).
    private static func wait(for signal: AsyncSignal, upToMs milliseconds: Int64) async {
        await withTaskCancellationHandler {
            await signal.wait(upToMs: milliseconds)
        } onCancel: {
            Task { await signal.signal() }
        }
    }

    /// A file's size and modification time, nil when it is gone or not a regular file.
    @Sendable static func fileState(_ path: String) -> SettleTracker.FileState? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return .init(size: Int64(info.st_size), modifiedAtNs: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}
