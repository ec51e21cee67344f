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
    private let config: ServiceConfig
    private let logger: Logger
    private let onWorkQueued: @Sendable () -> Void
    /// Called after a changed file's faces were removed and logged: the identity index catches up.
    private let onFacesRemoved: @Sendable () async throws -> Void
    /// Dates the unchanged photos of a finished scan that were analysed before photos carried dates.
    private let dateBackfill: TakenDateBackfill
    private let running = NIOLockedValueBox([String: Task<Void, Never>]())
    private let filesScanned = Counter(label: "photo_sorter_files_scanned_total")
    private let photosInserted = Counter(label: "photo_sorter_photos_inserted_total")
    private let batchTimer = Timer(label: "photo_sorter_ingest_batch_seconds")

    init(database: PhotoSorterDatabase, queue: any WorkQueue, config: ServiceConfig, logger: Logger,
         onWorkQueued: @escaping @Sendable () -> Void,
         onFacesRemoved: @escaping @Sendable () async throws -> Void, dateBackfill: TakenDateBackfill) {
        self.database = database
        self.queue = queue
        self.config = config
        self.logger = logger
        self.onWorkQueued = onWorkQueued
        self.onFacesRemoved = onFacesRemoved
        self.dateBackfill = dateBackfill
    }

    /// Validates the request, records the job and starts it in the background. Returns the job id.
    public func start(_ request: IngestRequest) async throws -> String {
        let root = try resolveFolder(request.path)
        let batchSize = request.batchSize ?? config.batchSize
        guard (1...10_000).contains(batchSize) else { throw PhotoSorterError.invalidRequest("batchSize must be 1...10000, got \(batchSize)") }
        let jobID = UUID().uuidString.lowercased()
        try await database.sql.raw("""
            INSERT INTO ingest_jobs (job_id, job_name, path, recursive, batch_size, dry_run, requested_by, status,
                scanned_count, inserted_count, skipped_count, queued_count, rejected_count, completed_batches, created_at)
            VALUES (\(bind: jobID), \(bind: request.jobName), \(bind: root), \(bind: request.recursive ?? true), \(bind: batchSize),
                \(bind: request.dryRun ?? false), \(bind: request.requestedBy), 'SCANNING', 0, 0, 0, 0, 0, 0, \(bind: nowMs()))
            """).run()
        logger.info("ingest job created", metadata: ["job_id": "\(jobID)", "path": "\(root)", "dry_run": "\(request.dryRun ?? false)"])
        launch(jobID)
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

    private func launch(_ jobID: String) {
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
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        guard let resolved = realpath(absolute, nil) else { throw PhotoSorterError.folderNotFound(path) }
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

    private struct JobRow: Decodable {
        let path: String
        let recursive: Bool
        let batchSize: Int
        let dryRun: Bool
        let completedBatches: Int
    }

    private func run(_ jobID: String) async {
        do {
            guard let job = try await database.sql.raw("""
                SELECT path, recursive, batch_size, dry_run, completed_batches FROM ingest_jobs WHERE job_id = \(bind: jobID)
                """).first(decoding: JobRow.self, keyDecodingStrategy: .convertFromSnakeCase) else { return }
            let scanner = DirectoryScanner(root: job.path, recursive: job.recursive, allowedRoots: symlinkRoots)
            var toSkip = job.completedBatches * job.batchSize
            var nextIndex = job.completedBatches
            var batch: [ScanEntry] = []
            var group: [[ScanEntry]] = []
            var queueRoom = 0
            for entry in scanner {
                if Task.isCancelled { return }
                if toSkip > 0 {
                    toSkip -= 1
                    continue
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
            if !job.dryRun { await dateBackfill.run(jobID: jobID) }
            try await database.sql.raw("""
                UPDATE ingest_jobs SET status = \(bind: job.dryRun ? "COMPLETED" : "SCANNED"), finished_at = \(bind: nowMs())
                WHERE job_id = \(bind: jobID)
                """).run()
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

        /// Same size and mtime as `file`: taken as the same content without reading it.
        func isUnchanged(by file: ScannedFile) -> Bool { filesize == file.size && modifiedAt == file.modifiedAtMs }
    }

    /// Symlinks may point into the configured roots only (anywhere when any folder may be ingested).
    private var symlinkRoots: [String]? { config.allowedRoots.isEmpty ? nil : config.allowedRoots }

    /// What reading a file's start gave: a photo, or the reason it is not queued.
    private typealias Inspection = Result<InspectedPhoto, NotQueuedReason>

    /// Reads the start of `files` (photos by content, the rest not queued with a reason), spread over the cores:
    /// each read is a few system calls, and one thread would leave the others idle while a scan is file-bound.
    private static func inspect(_ files: [ScannedFile]) async -> [String: Inspection] {
        let chunkSize = max(64, (files.count + ProcessInfo.processInfo.activeProcessorCount - 1) / ProcessInfo.processInfo.activeProcessorCount)
        return await withTaskGroup(of: [(String, Inspection)].self) { group in
            for start in stride(from: 0, to: files.count, by: chunkSize) {
                let chunk = files[start..<min(start + chunkSize, files.count)]
                group.addTask {
                    chunk.map { file in (file.path, Result { () throws(NotQueuedReason) in try PhotoFileInspector.inspect(file) }) }
                }
            }
            var inspections: [String: Inspection] = [:]
            for await chunk in group { for (path, inspection) in chunk { inspections[path] = inspection } }
            return inspections
        }
    }

    /// The stored rows of `paths`, by path (chunked under SQLite's and PostgreSQL's bind limits).
    private static func storedPhotos(_ paths: [String], on db: any SQLDatabase) async throws -> [String: ExistingPhoto] {
        var byPath: [String: ExistingPhoto] = [:]
        for start in stride(from: 0, to: paths.count, by: 5_000) {
            // Decoded column by column: SQLKit's `Decodable` row path (snake-case key conversion per row) cost a
            // third of a re-scan's time.
            for row in try await db.select().columns("id", "path", "filesize", "modified_at", "sample_hash").from("photos")
                .where("path", .in, Array(paths[start..<min(start + 5_000, paths.count)])).all() {
                let photo = ExistingPhoto(id: try row.decode(column: "id", as: Int64.self), path: try row.decode(column: "path", as: String.self),
                                          filesize: try row.decode(column: "filesize", as: Int64.self),
                                          modifiedAt: try row.decode(column: "modified_at", as: Int64.self),
                                          sampleHash: try row.decode(column: "sample_hash", as: String.self))
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
        let inspections = await Self.inspect(files.filter { storedBefore[$0.path]?.isUnchanged(by: $0) != true })
        let (queued, removedFaces) = try await database.transaction { tx -> ([(IngestBatchRef, [WorkItem])], Int) in
            // Read again under the transaction: another ingest may have stored some of these paths meanwhile.
            let byPath = try await Self.storedPhotos(files.map(\.path), on: tx)
            var totals = BatchCounts()
            var queued: [(IngestBatchRef, [WorkItem])] = []
            var removed: [IdentityService.IndexChange] = []
            var lockedIdentity = false
            for (offset, entries) in batches.enumerated() {
                var photos: [InspectedPhoto] = []
                var notQueued: [NotQueuedEntry] = []
                var unchanged: [Int64] = []
                for entry in entries {
                    switch entry {
                    case .notQueued(let rejection):
                        notQueued.append(rejection)
                    case .file(let file) where byPath[file.path]?.isUnchanged(by: file) == true:
                        unchanged.append(byPath[file.path]!.id)
                    case .file(let file):
                        // Not read before the transaction only if it looked unchanged then (a rare race): read it now.
                        switch inspections[file.path] ?? Result(catching: { () throws(NotQueuedReason) in try PhotoFileInspector.inspect(file) }) {
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
                                                   photos: photos, notQueued: notQueued, unchanged: unchanged, stored: byPath, dryRun: dryRun,
                                                   lockedIdentity: &lockedIdentity, on: tx)
                totals.add(outcome.counts)
                removed += outcome.removed
                if !outcome.items.isEmpty { queued.append((IngestBatchRef(jobID: jobID, index: firstIndex + offset), outcome.items)) }
            }
            try await tx.raw("""
                UPDATE ingest_jobs SET scanned_count = scanned_count + \(bind: totals.scanned),
                    inserted_count = inserted_count + \(bind: totals.inserted), skipped_count = skipped_count + \(bind: totals.skipped),
                    queued_count = queued_count + \(bind: totals.queued), rejected_count = rejected_count + \(bind: totals.rejected),
                    completed_batches = \(bind: firstIndex + batches.count)
                WHERE job_id = \(bind: jobID)
                """).run()
            _ = try await IdentityLog.append(removed, on: tx)
            return (queued, removed.count)
        }
        filesScanned.increment(by: batches.reduce(0) { $0 + $1.count })
        if removedFaces > 0 { try await onFacesRemoved() }
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
    private struct BatchCounts {
        var scanned = 0, inserted = 0, skipped = 0, queued = 0, rejected = 0

        mutating func add(_ other: BatchCounts) {
            scanned += other.scanned
            inserted += other.inserted
            skipped += other.skipped
            queued += other.queued
            rejected += other.rejected
        }
    }

    /// One batch inside the group's transaction: new rows inserted (INSERT-ignore), changed ones re-queued, touched
    /// ones' metadata updated, not-queued entries recorded, the `ingest_batches` row and its map rows written.
    private func store(batch: IngestBatchRef, entryCount: Int, photos: [InspectedPhoto], notQueued: [NotQueuedEntry], unchanged: [Int64],
                       stored byPath: [String: ExistingPhoto], dryRun: Bool, lockedIdentity: inout Bool,
                       on tx: any SQLDatabase) async throws -> (counts: BatchCounts, items: [WorkItem], removed: [IdentityService.IndexChange]) {
        try await Self.record(notQueued, jobID: batch.jobID, on: tx)
        let fresh = photos.filter { byPath[$0.file.path] == nil }
        let changed = photos.filter {
            guard let old = byPath[$0.file.path] else { return false }
            return old.sampleHash != $0.sampleHash
        }
        var counts = BatchCounts(scanned: entryCount, inserted: fresh.count + changed.count,
                                 skipped: unchanged.count + photos.count - fresh.count - changed.count, queued: 0, rejected: notQueued.count)
        if dryRun { return (counts, [], []) }
        let now = nowMs()
        var items: [WorkItem] = []
        items += try await PhotosTable.insertScanned(fresh, now: now, on: tx)
        var removed: [IdentityService.IndexChange] = []
        if !changed.isEmpty && !lockedIdentity {
            // The removals go to the identity change log, whose sequence is allocated under the identity lock.
            try await IdentityService.lockAcrossInstances(tx, flavor: database.flavor)
            lockedIdentity = true
        }
        for photo in changed {
            let (item, faces) = try await requeueChanged(photo, previous: byPath[photo.file.path]!, now: now, on: tx)
            items.append(item)
            removed += faces
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
        let photoIDs = Set(items.map(\.photoID) + unchanged + photos.compactMap { byPath[$0.file.path]?.id })
        if !photoIDs.isEmpty {
            var map = tx.insert(into: "photo_ingest_map").columns("photo_id", "job_id", "batch_id")
            for id in photoIDs.sorted() { map = map.values(SQLBind(id), SQLBind(batch.jobID), SQLBind(batchID)) }
            try await map.ignoringConflicts(with: ["job_id", "photo_id"]).run()
        }
        counts.queued = items.count
        return (counts, items, removed)
    }

    /// A file whose size/mtime and content hash changed is a new picture at the same path: its old faces are
    /// removed (persons' counts and the identity index follow) and it is processed again under the same id.
    private func requeueChanged(_ photo: InspectedPhoto, previous: ExistingPhoto, now: Int64,
                                on tx: any SQLDatabase) async throws -> (WorkItem, [IdentityService.IndexChange]) {
        logger.info("changed file re-ingested", metadata: ["photo_id": "\(previous.id)", "path": "\(photo.file.path)"])
        let faces = try await tx.raw("SELECT id, person_id, vector FROM embeddings WHERE photo_id = \(bind: previous.id)").all().map {
            IdentityService.IndexChange(embeddingID: try $0.decode(column: "id", as: Int64.self), from: try $0.decode(column: "person_id", as: Int64.self),
                                        to: nil, face: try EmbeddingCodec.decode(bytes: try $0.decode(column: "vector", as: Data.self)))
        }
        for (person, count) in Dictionary(grouping: faces, by: \.from).mapValues(\.count) {
            try await PersonsTable.removePhoto(of: person, faces: count, now: now, on: tx)
        }
        try await PhotoPersonsTable.remove(photo: previous.id, on: tx)
        try await FacesTable.remove(photo: previous.id, on: tx)
        try await MediaStore.removeImages(ofPhoto: previous.id, on: tx)
        return (try await PhotosTable.resetChanged(previous.id, to: photo, now: now, on: tx), faces)
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
