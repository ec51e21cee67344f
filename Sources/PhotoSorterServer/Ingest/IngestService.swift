import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import PhotoSorterCore
import SQLKit

/// Runs ingest jobs: streams a folder, inserts photo rows in batches with INSERT-ignore semantics,
/// maps photo → batch → job, and queues each new or changed photo once. Every other entry of the folder is
/// recorded in `ingest_rejections` with its reason (every file accounted for: scanned = queued + skipped + rejected).
///
/// Resume: the scanner's order is deterministic, and batches commit their rows (photos and rejections) together
/// with the job's `completed_batches` (several batches per transaction, see `entriesPerTransaction`); after a crash
/// the job skips `completed_batches × batch_size` entries — not-queued entries count like photos — and goes on.
/// Anything redone is harmless (inserts ignore existing rows).
public final class IngestService: Sendable {
    private let database: PhotoSorterDatabase
    private let queue: any WorkQueue
    let config: ServiceConfig
    private let logger: Logger
    private let onWorkQueued: @Sendable () -> Void
    /// Called after faces left (a changed or vanished file), returned or were copied: the identity index catches up.
    private let onFacesChanged: @Sendable () async throws -> Void
    /// Dates the unchanged photos of a finished scan that were analysed before photos carried dates.
    private let dateBackfill: TakenDateBackfill
    private let running = NIOLockedValueBox([String: Task<Void, Never>]())
    /// Per watcher job, the files still being written: neither taken nor swept.
    let unsettledFiles = NIOLockedValueBox([String: Set<String>]())
    private let filesScanned = Counter(label: "photo_sorter_files_scanned_total")
    private let photosInserted = Counter(label: "photo_sorter_photos_inserted_total")
    private let batchTimer = Timer(label: "photo_sorter_ingest_batch_seconds")

    init(database: PhotoSorterDatabase, queue: any WorkQueue, config: ServiceConfig, logger: Logger,
         onWorkQueued: @escaping @Sendable () -> Void,
         onFacesChanged: @escaping @Sendable () async throws -> Void, dateBackfill: TakenDateBackfill) {
        self.database = database
        self.queue = queue
        self.config = config
        self.logger = logger
        self.onWorkQueued = onWorkQueued
        self.onFacesChanged = onFacesChanged
        self.dateBackfill = dateBackfill
    }

    /// Validates the request, records the job and starts it in the background. Returns the job id. A folder that
    /// is gone while photos are stored under it is an unplugged drive, not a deletion: the job is recorded
    /// `ROOT_UNAVAILABLE` and nothing is marked missing.
    public func start(_ request: IngestRequest) async throws -> String {
        let batchSize = request.batchSize ?? config.batchSize
        guard (1...10_000).contains(batchSize) else { throw PhotoSorterError.invalidRequest("batchSize must be 1...10000, got \(batchSize)") }
        let root: String
        do {
            root = try resolveFolder(request.path)
        } catch let error as PhotoSorterError {
            guard case .folderNotFound = error, let gone = absolutePath(request.path),
                  config.allowedRoots.isEmpty || AllowedRoots(config.allowedRoots).contains(canonicalPath: gone),
                  try await holdsPhotos(gone) else { throw error }
            let jobID = try await createJob(path: gone, root: nil, recursive: request.recursive ?? true, batchSize: batchSize,
                                            dryRun: request.dryRun ?? false, name: request.jobName, requestedBy: request.requestedBy)
            try await finishUnavailable(jobID, root: gone, reason: "the folder is gone")
            return jobID
        }
        let jobID = try await createJob(path: root, root: nil, recursive: request.recursive ?? true, batchSize: batchSize,
                                        dryRun: request.dryRun ?? false, name: request.jobName, requestedBy: request.requestedBy)
        launch(jobID)
        return jobID
    }

    /// Records a job, SCANNING; `root` is the watch root of a watcher's scan (nil: the folder is its own root).
    func createJob(path: String, root: String?, recursive: Bool, batchSize: Int, dryRun: Bool, name: String?,
                   requestedBy: String?) async throws -> String {
        let jobID = UUID().uuidString.lowercased()
        try await database.sql.raw("""
            INSERT INTO ingest_jobs (job_id, job_name, path, root, recursive, batch_size, dry_run, requested_by, status,
                scanned_count, inserted_count, skipped_count, queued_count, rejected_count, completed_batches, created_at)
            VALUES (\(bind: jobID), \(bind: name), \(bind: path), \(bind: root), \(bind: recursive), \(bind: batchSize),
                \(bind: dryRun), \(bind: requestedBy), 'SCANNING', 0, 0, 0, 0, 0, 0, \(bind: nowMs()))
            """).run()
        logger.info("ingest job created", metadata: ["job_id": "\(jobID)", "path": "\(path)", "dry_run": "\(dryRun)",
                                                     "requested_by": "\(requestedBy ?? "")"])
        return jobID
    }

    /// Restarts jobs a crash or shutdown left in SCANNING.
    func resumeInterruptedJobs() async throws {
        let rows = try await database.sql.raw("SELECT job_id FROM ingest_jobs WHERE status = 'SCANNING' ORDER BY created_at").all()
        for row in rows {
            let jobID = try row.decode(column: "job_id", as: String.self)
            logger.info("resuming interrupted ingest job", metadata: ["job_id": "\(jobID)"])
            launch(jobID)
        }
    }

    /// Waits until the job's scan has finished (not its processing).
    public func waitForScan(_ jobID: String) async {
        await running.withLockedValue { $0[jobID] }?.value
    }

    func shutdown() async {
        let tasks = running.withLockedValue { Array($0.values) }
        tasks.forEach { $0.cancel() }
        for task in tasks { await task.value }
    }

    func launch(_ jobID: String) {
        running.withLockedValue { tasks in
            guard tasks[jobID] == nil else { return }
            tasks[jobID] = Task {
                await self.run(jobID)
                _ = self.running.withLockedValue { $0.removeValue(forKey: jobID) }
            }
        }
    }

    /// Canonical absolute folder path; rejects missing folders, files, and folders outside the allowed roots (any
    /// folder when none are set, but only while the service listens on loopback alone).
    func resolveFolder(_ path: String) throws -> String {
        guard !path.isEmpty else { throw PhotoSorterError.invalidRequest("path is required") }
        // Reachable from other machines, the service takes folders from requests only inside configured roots
        // (checked before the path is touched, so nothing outside them is even probed).
        if config.allowedRoots.isEmpty && !config.bindsLoopbackOnly {
            throw PhotoSorterError.outsideAllowedRoots("\(path) (the service listens on \(config.host): set PHOTO_SORTER_ALLOWED_ROOTS)")
        }
        guard let absolute = absolutePath(path), let resolved = realpath(absolute, nil) else { throw PhotoSorterError.folderNotFound(path) }
        defer { free(resolved) }
        let canonical = String(cString: resolved)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: canonical, isDirectory: &isDirectory) else { throw PhotoSorterError.folderNotFound(path) }
        guard isDirectory.boolValue else { throw PhotoSorterError.notADirectory(path) }
        if !config.allowedRoots.isEmpty, !AllowedRoots(config.allowedRoots).contains(canonicalPath: canonical) {
            throw PhotoSorterError.outsideAllowedRoots(path)
        }
        return canonical
    }

    /// `path` made absolute and normalised without touching the file system (it may be gone); nil for "".
    func absolutePath(_ path: String) -> String? {
        guard !path.isEmpty else { return nil }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let standard = URL(fileURLWithPath: absolute).standardizedFileURL.path
        return standard.count > 1 && standard.hasSuffix("/") ? String(standard.dropLast()) : standard
    }

    private struct JobRow: Decodable {
        let path: String
        let root: String?
        let recursive: Bool
        let batchSize: Int
        let dryRun: Bool
        let completedBatches: Int
    }

    private func run(_ jobID: String) async {
        do {
            guard let job = try await database.sql.raw("""
                SELECT path, root, recursive, batch_size, dry_run, completed_batches FROM ingest_jobs WHERE job_id = \(bind: jobID)
                """).first(decoding: JobRow.self, keyDecodingStrategy: .convertFromSnakeCase) else { return }
            let root = job.root ?? job.path
            let unsettled = unsettledFiles.withLockedValue { $0[jobID] } ?? []
            defer { _ = unsettledFiles.withLockedValue { $0.removeValue(forKey: jobID) } }
            if let problem = Self.unavailability(of: root) {
                guard try await holdsPhotos(root) else { throw PhotoSorterError.folderNotFound(root) }
                try await finishUnavailable(jobID, root: root, reason: problem)
                return
            }
            if job.path != root && Self.unavailability(of: job.path) != nil {
                // A folder inside a present watch root is gone (moved away or deleted): its photos vanished, or
                // moved where another scan finds them.
                if !job.dryRun { try await sweepVanished(jobID: jobID, folder: job.path, recursive: true, unreadable: [], unsettled: unsettled) }
                try await finishScan(jobID, dryRun: job.dryRun)
                return
            }
            let scanner = DirectoryScanner(root: job.path, recursive: job.recursive, allowedRoots: symlinkRoots)
            var toSkip = job.completedBatches * job.batchSize
            var nextIndex = job.completedBatches
            var batch: [ScanEntry] = []
            var group: [[ScanEntry]] = []
            var queueRoom = 0
            var unreadable: [String] = []
            for entry in scanner {
                if Task.isCancelled { return }
                if toSkip > 0 {
                    toSkip -= 1
                    continue
                }
                switch entry {
                case .file(let file) where unsettled.contains(file.path):
                    continue
                case .notQueued(let rejected) where rejected.reason.isUnreadableDirectory:
                    unreadable.append(rejected.path)
                default:
                    break
                }
                batch.append(entry)
                guard batch.count == job.batchSize else { continue }
                group.append(batch)
                batch.removeAll(keepingCapacity: true)
                if group.count * job.batchSize >= Self.entriesPerTransaction {
                    let queued = try await commit(group, firstIndex: nextIndex, jobID: jobID, dryRun: job.dryRun)
                    nextIndex += group.count
                    group.removeAll(keepingCapacity: true)
                    queueRoom = try await waitForQueueRoom(queueRoom - queued)
                }
            }
            if Task.isCancelled { return }
            if !batch.isEmpty { group.append(batch) }
            if !group.isEmpty {
                _ = try await commit(group, firstIndex: nextIndex, jobID: jobID, dryRun: job.dryRun)
                nextIndex += group.count
            }
            if nextIndex == 0, job.path == root, unsettled.isEmpty, !job.dryRun, try await holdsPhotos(root) {
                // Nothing at all where photos were: an empty mount point, not a library whose every file was deleted.
                try await finishUnavailable(jobID, root: root, reason: "the folder is empty while photos are stored under it")
                return
            }
            if !job.dryRun {
                try await sweepVanished(jobID: jobID, folder: job.path, recursive: job.recursive, unreadable: unreadable, unsettled: unsettled)
                await dateBackfill.run(jobID: jobID)
            }
            try await finishScan(jobID, dryRun: job.dryRun)
            logger.info("ingest scan finished", metadata: ["job_id": "\(jobID)", "batches": "\(nextIndex)"])
        } catch is CancellationError {
            return
        } catch {
            logger.error("ingest job failed", metadata: ["job_id": "\(jobID)", "error": "\(error)"])
            try? await database.sql.raw("""
                UPDATE ingest_jobs SET status = 'FAILED', last_error = \(bind: "\(error)"), finished_at = \(bind: nowMs())
                WHERE job_id = \(bind: jobID)
                """).run()
        }
    }

    private func finishScan(_ jobID: String, dryRun: Bool) async throws {
        try await database.sql.raw("""
            UPDATE ingest_jobs SET status = \(bind: dryRun ? "COMPLETED" : "SCANNED"), finished_at = \(bind: nowMs())
            WHERE job_id = \(bind: jobID)
            """).run()
    }

    /// Ends a job whose root cannot be scanned while photos are stored under it: nothing was marked missing.
    private func finishUnavailable(_ jobID: String, root: String, reason: String) async throws {
        let message = "root unavailable: \(root): \(reason); nothing was marked missing (an unplugged drive is not a deletion)"
        logger.warning("root unavailable", metadata: ["job_id": "\(jobID)", "root": "\(root)", "reason": "\(reason)"])
        try await database.sql.raw("""
            UPDATE ingest_jobs SET status = 'ROOT_UNAVAILABLE', last_error = \(bind: message), finished_at = \(bind: nowMs())
            WHERE job_id = \(bind: jobID)
            """).run()
    }

    /// Why `folder` cannot be scanned (gone, not a folder, unreadable), or nil when it can.
    static func unavailability(of folder: String) -> String? {
        var info = stat()
        guard stat(folder, &info) == 0 else { return "the folder is gone (\(String(cString: strerror(errno))))" }
        guard info.st_mode & S_IFMT == S_IFDIR else { return "not a folder" }
        guard let directory = opendir(folder) else { return "the folder cannot be read (\(String(cString: strerror(errno))))" }
        closedir(directory)
        return nil
    }

    /// Whether photos (not missing) are stored under `folder`.
    private func holdsPhotos(_ folder: String) async throws -> Bool {
        try await database.sql.raw("""
            SELECT id FROM photos WHERE \(PhotosTable.pathsInside(folder, recursive: true, flavor: database.flavor))
                AND status <> 'MISSING' LIMIT 1
            """).first() != nil
    }

    /// Photos under `folder` this scan did not find (not seen, not refused, not under an unreadable folder, not
    /// still being written, and gone from the disk now) become MISSING, in chunks: their faces are parked with
    /// their corrections and leave their persons, the identity index and the review queue. One statement finds
    /// them (the job's map holds every photo it saw), so no query per photo at a million photos.
    private func sweepVanished(jobID: String, folder: String, recursive: Bool, unreadable: [String], unsettled: Set<String>) async throws {
        let started = ContinuousClock.now
        let candidates = try await database.sql.raw("""
            SELECT id, path FROM photos WHERE \(PhotosTable.pathsInside(folder, recursive: recursive, flavor: database.flavor))
                AND status <> 'MISSING'
                AND id NOT IN (SELECT photo_id FROM photo_ingest_map WHERE job_id = \(bind: jobID))
                AND path NOT IN (SELECT path FROM ingest_rejections WHERE job_id = \(bind: jobID))
            """).all().map { (id: try $0.decode(column: "id", as: Int64.self), path: try $0.decode(column: "path", as: String.self)) }
        let vanished = candidates.filter { photo in
            !unsettled.contains(photo.path) && !unreadable.contains { photo.path.hasPrefix($0 + "/") } && !Self.fileExists(photo.path)
        }.map(\.id)
        guard !vanished.isEmpty else { return }
        for start in stride(from: 0, to: vanished.count, by: Self.sweepChunk) {
            let chunk = Array(vanished[start..<min(start + Self.sweepChunk, vanished.count)])
            try await database.transaction { tx in
                try await IdentityService.lockAcrossInstances(tx, flavor: self.database.flavor)
                let now = nowMs()
                let parked = try await ParkedFacesTable.park(photos: chunk, reason: .missing, on: tx)
                try await PersonsTable.removePhotos(parked.lost, now: now, on: tx)
                try await PhotoPersonsTable.remove(photos: chunk, on: tx)
                try await PhotosTable.markMissing(chunk, now: now, on: tx)
                try await tx.raw("UPDATE ingest_jobs SET missing_count = missing_count + \(bind: chunk.count) WHERE job_id = \(bind: jobID)").run()
            }
        }
        try await onFacesChanged()
        logger.info("photos missing", metadata: ["job_id": "\(jobID)", "folder": "\(folder)", "count": "\(vanished.count)",
                                                 "took": "\(ContinuousClock.now - started)"])
    }

    /// Photos marked missing per transaction.
    static let sweepChunk = 1_000

    /// Consecutive batches are committed together until they hold this many entries: one transaction (and one
    /// fsync) per 50-file batch is what limited a scan to a few thousand files a second. Each batch keeps its own
    /// `ingest_batches` row, map rows and queue message; only the commit is shared.
    static let entriesPerTransaction = 2_000

    /// Backpressure: scanning waits while the queue holds more than the high watermark. Counting a large queue is
    /// not free, so `room` — how many more photos this job may queue before the last count could be exceeded — is
    /// carried between calls, and the queue is counted again only when it is used up. Returns the new room.
    private func waitForQueueRoom(_ room: Int) async throws -> Int {
        if room > 0 { return room }
        while true {
            let pending = try await queue.pendingCount()
            if pending <= config.queueHighWatermark { return config.queueHighWatermark - pending + 1 }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    private struct ExistingPhoto {
        let id: Int64
        let path: String
        let filesize: Int64
        let modifiedAt: Int64
        let sampleHash: String
        let status: PhotoStatus
        let sidecarStamp: String?

        /// Same size and mtime as `file`, and the same sidecar: taken as the same content without reading it.
        func isUnchanged(by file: ScannedFile) -> Bool {
            filesize == file.size && modifiedAt == file.modifiedAtMs && sidecarStamp == file.sidecarStamp
        }
    }

    /// Symlinks may point into the configured roots only (anywhere when any folder may be ingested).
    private var symlinkRoots: [String]? { config.allowedRoots.isEmpty ? nil : config.allowedRoots }

    /// What reading a file's start gave: a photo, or the reason it is not queued.
    private typealias Inspection = Result<InspectedPhoto, NotQueuedReason>

    /// What reading files gave: each one's inspection, and the full content hash of each photo (`ContentHash`).
    private struct Inspections {
        var results: [String: Inspection] = [:]
        var fullHashes: [String: String] = [:]
    }

    /// Reads `files` (photos by content, the rest not queued with a reason; each photo hashed whole), spread over
    /// the cores: each read is a few system calls, and one thread would leave the others idle while a scan is
    /// file-bound.
    private static func inspect(_ files: [ScannedFile]) async -> Inspections {
        let chunkSize = max(64, (files.count + ProcessInfo.processInfo.activeProcessorCount - 1) / ProcessInfo.processInfo.activeProcessorCount)
        return await withTaskGroup(of: [(String, Inspection, String?)].self) { group in
            for start in stride(from: 0, to: files.count, by: chunkSize) {
                let chunk = files[start..<min(start + chunkSize, files.count)]
                group.addTask {
                    chunk.map { file in
                        let inspection = Result { () throws(NotQueuedReason) in try PhotoFileInspector.inspect(file) }
                        let fullHash = (try? inspection.get()).flatMap { _ in ContentHash.of(path: file.path) }
                        return (file.path, inspection, fullHash)
                    }
                }
            }
            var inspections = Inspections()
            for await chunk in group {
                for (path, inspection, fullHash) in chunk {
                    inspections.results[path] = inspection
                    inspections.fullHashes[path] = fullHash
                }
            }
            return inspections
        }
    }

    /// The stored rows of `paths`, by path (chunked under SQLite's and PostgreSQL's bind limits).
    private static func storedPhotos(_ paths: [String], on db: any SQLDatabase) async throws -> [String: ExistingPhoto] {
        var byPath: [String: ExistingPhoto] = [:]
        for start in stride(from: 0, to: paths.count, by: 5_000) {
            // Decoded column by column: SQLKit's `Decodable` row path (snake-case key conversion per row) cost a
            // third of a re-scan's time.
            for row in try await db.select().columns("id", "path", "filesize", "modified_at", "sample_hash", "status", "sidecar_stamp").from("photos")
                .where("path", .in, Array(paths[start..<min(start + 5_000, paths.count)])).all() {
                let photo = ExistingPhoto(id: try row.decode(column: "id", as: Int64.self), path: try row.decode(column: "path", as: String.self),
                                          filesize: try row.decode(column: "filesize", as: Int64.self),
                                          modifiedAt: try row.decode(column: "modified_at", as: Int64.self),
                                          sampleHash: try row.decode(column: "sample_hash", as: String.self),
                                          status: PhotoStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .failed,
                                          sidecarStamp: try row.decode(column: "sidecar_stamp", as: String?.self))
                byPath[photo.path] = photo
            }
        }
        return byPath
    }

    /// Consecutive batches in one transaction (see `entriesPerTransaction`). Files already stored with the same
    /// size and mtime are skipped without being opened; the others are read (in parallel) before the transaction,
    /// so no lock is held during file I/O. Inside it, per batch: insert new rows, re-queue changed ones, record the
    /// not-queued entries, the batch and its map rows; then advance the job's resume point past the last batch.
    /// Returns how many photos were queued.
    private func commit(_ batches: [[ScanEntry]], firstIndex: Int, jobID: String, dryRun: Bool) async throws -> Int {
        let started = ContinuousClock.now
        let files = batches.joined().compactMap { entry -> ScannedFile? in
            if case .file(let file) = entry { return file }
            return nil
        }
        let storedBefore = try await Self.storedPhotos(files.map(\.path), on: database.sql)
        let inspectedBefore = await Self.inspect(files.filter { storedBefore[$0.path]?.isUnchanged(by: $0) != true })
        let (queued, facesChanged) = try await database.transaction { tx -> ([(IngestBatchRef, [WorkItem])], Bool) in
            // Read again under the transaction: another ingest may have stored some of these paths meanwhile.
            let byPath = try await Self.storedPhotos(files.map(\.path), on: tx)
            var inspections = inspectedBefore
            var totals = BatchCounts()
            var queued: [(IngestBatchRef, [WorkItem])] = []
            var lockedIdentity = false
            for (offset, entries) in batches.enumerated() {
                var photos: [InspectedPhoto] = []
                var notQueued: [NotQueuedEntry] = []
                var unchanged: [ExistingPhoto] = []
                for entry in entries {
                    switch entry {
                    case .notQueued(let rejection):
                        notQueued.append(rejection)
                    case .file(let file) where byPath[file.path]?.isUnchanged(by: file) == true:
                        unchanged.append(byPath[file.path]!)
                    case .file(let file):
                        // Not read before the transaction only if it looked unchanged then (a rare race): read it now.
                        if inspections.results[file.path] == nil {
                            inspections.results[file.path] = Result { () throws(NotQueuedReason) in try PhotoFileInspector.inspect(file) }
                            inspections.fullHashes[file.path] = ContentHash.of(path: file.path)
                        }
                        switch inspections.results[file.path]! {
                        case .success(let photo):
                            if photo.extensionDisagrees {
                                self.logger.notice("extension does not match the content; analysed as its content", metadata: [
                                    "job_id": "\(jobID)", "path": "\(file.path)", "format": "\(photo.format.rawValue)"])
                            }
                            photos.append(photo)
                        case .failure(let reason):
                            notQueued.append(NotQueuedEntry(path: file.path, reason: reason))
                        }
                    }
                }
                let outcome = try await self.store(batch: IngestBatchRef(jobID: jobID, index: firstIndex + offset), entryCount: entries.count,
                                                   photos: photos, fullHashes: inspections.fullHashes, notQueued: notQueued, unchanged: unchanged,
                                                   stored: byPath, dryRun: dryRun, lockedIdentity: &lockedIdentity, on: tx)
                totals.add(outcome.counts)
                if !outcome.items.isEmpty { queued.append((IngestBatchRef(jobID: jobID, index: firstIndex + offset), outcome.items)) }
            }
            try await tx.raw("""
                UPDATE ingest_jobs SET scanned_count = scanned_count + \(bind: totals.scanned),
                    inserted_count = inserted_count + \(bind: totals.inserted), skipped_count = skipped_count + \(bind: totals.skipped),
                    queued_count = queued_count + \(bind: totals.queued), rejected_count = rejected_count + \(bind: totals.rejected),
                    moved_count = moved_count + \(bind: totals.moved), restored_count = restored_count + \(bind: totals.restored),
                    copies_count = copies_count + \(bind: totals.copies), completed_batches = \(bind: firstIndex + batches.count)
                WHERE job_id = \(bind: jobID)
                """).run()
            return (queued, lockedIdentity)
        }
        filesScanned.increment(by: batches.reduce(0) { $0 + $1.count })
        if facesChanged { try await onFacesChanged() }
        var queuedCount = 0
        for (batch, items) in queued {
            try await queue.enqueue(items, batch: batch)
            queuedCount += items.count
        }
        if queuedCount > 0 {
            photosInserted.increment(by: queuedCount)
            onWorkQueued()
        }
        let elapsed = ContinuousClock.now - started
        batchTimer.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        return queuedCount
    }

    /// How a batch's entries were counted (`scanned` = `skipped` + `inserted`-or-unchanged photos + `rejected`).
    /// Moved, restored and copied photos are among the skipped (nothing to analyse) and are counted again on
    /// their own.
    private struct BatchCounts {
        var scanned = 0, inserted = 0, skipped = 0, queued = 0, rejected = 0, moved = 0, restored = 0, copies = 0

        mutating func add(_ other: BatchCounts) {
            scanned += other.scanned
            inserted += other.inserted
            skipped += other.skipped
            queued += other.queued
            rejected += other.rejected
            moved += other.moved
            restored += other.restored
            copies += other.copies
        }
    }

    /// One batch inside the group's transaction: new paths first matched by content to stored photos (moved,
    /// back from missing, or a copy, see `follow`), the other new rows inserted (INSERT-ignore), changed ones
    /// re-queued, missing ones found again at their path restored, touched ones' metadata updated, not-queued
    /// entries recorded, the `ingest_batches` row and its map rows written.
    private func store(batch: IngestBatchRef, entryCount: Int, photos: [InspectedPhoto], fullHashes: [String: String],
                       notQueued: [NotQueuedEntry], unchanged: [ExistingPhoto], stored byPath: [String: ExistingPhoto], dryRun: Bool,
                       lockedIdentity: inout Bool,
                       on tx: any SQLDatabase) async throws -> (counts: BatchCounts, items: [WorkItem]) {
        // XMP sidecars are part of their photos (face names): skipped, not listed as files that are no photos.
        let sidecars = notQueued.count { $0.reason == .xmpSidecar }
        let notQueued = notQueued.filter { $0.reason != .xmpSidecar }
        try await Self.record(notQueued, jobID: batch.jobID, on: tx)
        let newPaths = photos.filter { byPath[$0.file.path] == nil }
        // New content, or a sidecar written by another tool (its face names are read again with a new analysis).
        let changed = photos.filter {
            guard let old = byPath[$0.file.path] else { return false }
            return old.sampleHash != $0.sampleHash || (old.status != .missing && old.sidecarStamp != $0.file.sidecarStamp)
        }
        // MISSING photos found again at their own path, with their content.
        let returned = unchanged.filter { $0.status == .missing } + photos.compactMap { photo in
            guard let old = byPath[photo.file.path], old.status == .missing, old.sampleHash == photo.sampleHash else { return nil }
            return old
        }
        var counts = BatchCounts(scanned: entryCount, inserted: newPaths.count + changed.count,
                                 skipped: unchanged.count + photos.count - newPaths.count - changed.count + sidecars, queued: 0,
                                 rejected: notQueued.count)
        if dryRun { return (counts, []) }
        let now = nowMs()
        if (!changed.isEmpty || !returned.isEmpty || !newPaths.isEmpty) && !lockedIdentity {
            // Faces leave (a changed file), return (a missing photo back) or are copied (the same content at a new
            // path): the change log and embedding ids are allocated under the identity lock.
            try await IdentityService.lockAcrossInstances(tx, flavor: database.flavor)
            lockedIdentity = true
        }
        var followed = try await follow(newPaths, fullHashes: fullHashes, jobID: batch.jobID, now: now, on: tx)
        for photo in returned {
            if let work = try await restore(photo.id, at: photo.path, now: now, on: tx) { followed.work.append(work) }
            followed.photoIDs.append(photo.id)
            followed.restored += 1
        }
        // Found again with nothing to analyse: skipped. Restored photos that had no analysis are queued instead.
        let foundAgain = followed.moved + followed.restored + followed.copies - returned.count
        counts.inserted += followed.work.count - foundAgain
        counts.skipped += foundAgain - followed.work.count
        counts.moved = followed.moved
        counts.restored = followed.restored
        counts.copies = followed.copies
        var items: [WorkItem] = []
        items += try await PhotosTable.insertScanned(followed.remaining, fullHashes: fullHashes, now: now, on: tx) + followed.work
        for photo in changed {
            items.append(try await requeueChanged(photo, previous: byPath[photo.file.path]!, fullHash: fullHashes[photo.file.path],
                                                  now: now, on: tx))
        }
        // Unchanged files whose mtime moved (touch, copy) keep their results; record the new metadata.
        let changedPaths = Set(changed.map(\.file.path))
        for photo in photos where !changedPaths.contains(photo.file.path) {
            if let old = byPath[photo.file.path], !old.isUnchanged(by: photo.file) {
                try await PhotosTable.recordTouched(old.id, file: photo.file, on: tx)
            }
        }
        let batchID = try await tx.raw("""
            INSERT INTO ingest_batches (job_id, batch_index, photo_count, inserted_count, status, created_at, queued_at)
            VALUES (\(bind: batch.jobID), \(bind: batch.index), \(bind: entryCount), \(bind: items.count), 'QUEUED', \(bind: now), \(bind: now))
            ON CONFLICT (job_id, batch_index) DO UPDATE SET photo_count = excluded.photo_count
            RETURNING id
            """).first()!.decode(column: "id", as: Int64.self)
        let photoIDs = Set(items.map(\.photoID) + unchanged.map(\.id) + photos.compactMap { byPath[$0.file.path]?.id } + followed.photoIDs)
        if !photoIDs.isEmpty {
            var map = tx.insert(into: "photo_ingest_map").columns("photo_id", "job_id", "batch_id")
            for id in photoIDs.sorted() { map = map.values(SQLBind(id), SQLBind(batch.jobID), SQLBind(batchID)) }
            try await map.ignoringConflicts(with: ["job_id", "photo_id"]).run()
        }
        counts.queued = items.count
        return (counts, items)
    }

    /// What `follow` made of a batch's new paths.
    private struct Followed {
        /// New content: inserted READY and analysed.
        var remaining: [InspectedPhoto] = []
        /// Photos this scan found (moved, restored, copies), for the job's map.
        var photoIDs: [Int64] = []
        /// Restored photos that had no analysis to keep: queued like new ones.
        var work: [WorkItem] = []
        var moved = 0, restored = 0, copies = 0
    }

    /// New paths whose content is a stored photo's (same sample hash; same full hash where the stored photo has
    /// one, as every photo stored since content hashes were written does):
    /// - the stored photo's file is gone (or it is MISSING): it moved here, keeping its id, faces, persons and
    ///   corrections (only path and name change; a MISSING photo comes back with its faces);
    /// - it is still there and analysed: a copy, a photo of its own that reuses the analysis and joins the same
    ///   persons, without an ML call;
    /// - otherwise (not analysed yet) the new path is new content; the dispatcher makes it wait for its twin
    ///   (`ContentTwins`), so one content is analysed once.
    private func follow(_ newPaths: [InspectedPhoto], fullHashes: [String: String], jobID: String, now: Int64,
                        on tx: any SQLDatabase) async throws -> Followed {
        var followed = Followed()
        var moves: [PhotosTable.Move] = []
        var bySample = try await PhotosTable.sameContent(Set(newPaths.map(\.sampleHash)), on: tx)
        for photo in newPaths {
            guard let fullHash = fullHashes[photo.file.path], var candidates = bySample[photo.sampleHash] else {
                followed.remaining.append(photo)
                continue
            }
            candidates = candidates.filter { $0.fullHash == nil || $0.fullHash == fullHash }
            if let index = candidates.firstIndex(where: { $0.status == .missing || !Self.fileExists($0.path) }) {
                let photoBefore = candidates[index]
                if photoBefore.status == .missing {
                    if let work = try await restore(photoBefore.id, at: photo, fullHash: fullHash, now: now, on: tx) { followed.work.append(work) }
                    followed.restored += 1
                } else {
                    moves.append(PhotosTable.Move(id: photoBefore.id, photo: photo, fullHash: fullHash))
                    followed.moved += 1
                }
                logger.debug("photo moved", metadata: ["job_id": "\(jobID)", "photo_id": "\(photoBefore.id)", "from": "\(photoBefore.path)",
                                                      "to": "\(photo.file.path)", "was_missing": "\(photoBefore.status == .missing)"])
                followed.photoIDs.append(photoBefore.id)
                bySample[photo.sampleHash] = bySample[photo.sampleHash]!.map {
                    guard $0.id == photoBefore.id else { return $0 }
                    var moved = $0
                    moved.path = photo.file.path
                    return PhotosTable.SameContent(id: moved.id, path: photo.file.path, status: .processed, fullHash: fullHash,
                                                   analysed: moved.analysed)
                }
            } else if let source = candidates.first(where: { $0.status == .processed && $0.analysed }),
                      let copy = try await PhotosTable.insertCopy(photo, fullHash: fullHash, of: source.id, now: now, on: tx) {
                try await ContentTwins.copyFaces(of: source.id, to: copy, now: now, on: tx)
                logger.info("copy of an analysed photo", metadata: ["job_id": "\(jobID)", "photo_id": "\(copy)", "copy_of": "\(source.id)",
                                                                   "path": "\(photo.file.path)"])
                followed.photoIDs.append(copy)
                followed.copies += 1
            } else {
                followed.remaining.append(photo)
            }
        }
        try await PhotosTable.relocate(moves, now: now, on: tx)
        if followed.moved + followed.restored > 0 {
            logger.info("photos moved", metadata: ["job_id": "\(jobID)", "moved": "\(followed.moved)", "restored": "\(followed.restored)"])
        }
        return followed
    }

    /// A MISSING photo found again (at `photo`'s path, which may be its old one): its file and status back, its
    /// faces back on their persons (followed through merges made meanwhile), with their corrections. Returns the
    /// work to queue when it had no analysis to keep.
    private func restore(_ id: Int64, at photo: InspectedPhoto, fullHash: String?, now: Int64, on tx: any SQLDatabase) async throws -> WorkItem? {
        let (status, work) = try await PhotosTable.relocate(id, to: photo, fullHash: fullHash, now: now, on: tx)
        guard status == .processed else { return work }
        let persons = try await PersonsTable.current(try await ParkedFacesTable.persons(ofPhoto: id, on: tx), on: tx)
        _ = try await ParkedFacesTable.unpark(photo: id, persons: persons, on: tx)
        try await PersonBookkeeping.refresh(photos: [id], persons: Set(persons.values), on: tx)
        return nil
    }

    /// `restore` of a photo found at its own, unchanged path.
    private func restore(_ id: Int64, at path: String, now: Int64, on tx: any SQLDatabase) async throws -> WorkItem? {
        guard case .file(let file) = DirectoryScanner.entry(atPath: path, allowedRoots: nil),
              let photo = try? PhotoFileInspector.inspect(file) else { return nil }
        return try await restore(id, at: photo, fullHash: nil, now: now, on: tx)
    }

    /// Whether anything is at `path` (a vanished file is a move's old path; an unreadable one is still there).
    static func fileExists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 || errno != ENOENT
    }

    /// A file whose size/mtime and content hash changed is a new picture at the same path: its old faces are
    /// parked with their corrections (persons' counts and the identity index lose them; the new analysis's faces
    /// take the corrections of the faces they overlap, see `ParkedFacesTable.corrections`) and it is processed
    /// again under the same id.
    private func requeueChanged(_ photo: InspectedPhoto, previous: ExistingPhoto, fullHash: String?, now: Int64,
                                on tx: any SQLDatabase) async throws -> WorkItem {
        logger.info("changed file re-ingested", metadata: ["photo_id": "\(previous.id)", "path": "\(photo.file.path)"])
        // A photo missing until now keeps what it had for the carry-over too.
        try await ParkedFacesTable.repark(photo: previous.id, as: .changed, on: tx)
        let parked = try await ParkedFacesTable.park(photos: [previous.id], reason: .changed, on: tx)
        try await PersonsTable.removePhotos(parked.lost, now: now, on: tx)
        try await PhotoPersonsTable.remove(photo: previous.id, on: tx)
        try await MediaStore.removeImages(ofPhoto: previous.id, on: tx)
        return try await PhotosTable.resetChanged(previous.id, to: photo, fullHash: fullHash, now: now, on: tx)
    }

    /// Inserts the batch's not-queued entries, in chunks that stay under SQLite's and PostgreSQL's bind limits.
    private static func record(_ notQueued: [NotQueuedEntry], jobID: String, on tx: any SQLDatabase) async throws {
        let now = nowMs()
        for start in stride(from: 0, to: notQueued.count, by: 500) {
            var insert = tx.insert(into: "ingest_rejections").columns("job_id", "path", "reason", "created_at")
            for entry in notQueued[start..<min(start + 500, notQueued.count)] {
                insert = insert.values(SQLBind(jobID), SQLBind(entry.path), SQLBind(entry.reason.description), SQLBind(now))
            }
            try await insert.ignoringConflicts(with: ["job_id", "path"]).run()
        }
    }
}

extension IngestService {
    /// Registers a single file (POST /classify-photo by path): validated like a folder, inserted if new. A path that
    /// is not a photo is refused with the reason a folder ingest would give it.
    func register(path: String) async throws -> Int64 {
        let folder = try resolveFolder((path as NSString).deletingLastPathComponent)
        let fullPath = folder + "/" + (path as NSString).lastPathComponent
        let photo: InspectedPhoto
        switch DirectoryScanner.entry(atPath: fullPath, allowedRoots: symlinkRoots) {
        case .notQueued(let entry):
            throw PhotoSorterError.notAPhoto(path: path, reason: entry.reason.description)
        case .file(let scanned):
            do throws(NotQueuedReason) { photo = try PhotoFileInspector.inspect(scanned) } catch { throw PhotoSorterError.notAPhoto(path: path, reason: error.description) }
        }
        try await PhotosTable.insertForClassify(photo, now: nowMs(), on: database.sql)
        return try await database.sql.raw("SELECT id FROM photos WHERE path = \(bind: photo.file.path)").first()!.decode(column: "id", as: Int64.self)
    }
}
