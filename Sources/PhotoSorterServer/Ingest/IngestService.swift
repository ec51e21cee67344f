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
/// Resume: the scanner's order is deterministic, and each batch commits its rows (photos and rejections) together
/// with the job's `completed_batches`; after a crash the job skips `completed_batches × batch_size` entries —
/// not-queued entries count like photos — and goes on. Anything redone is harmless (inserts ignore existing rows).
public final class IngestService: Sendable {
    private let database: PhotoSorterDatabase
    private let queue: any WorkQueue
    private let config: ServiceConfig
    private let logger: Logger
    private let onWorkQueued: @Sendable () -> Void
    /// Called after a changed file's faces were removed and logged: the identity index catches up.
    private let onFacesRemoved: @Sendable () async throws -> Void
    private let running = NIOLockedValueBox([String: Task<Void, Never>]())
    private let filesScanned = Counter(label: "photo_sorter_files_scanned_total")
    private let photosInserted = Counter(label: "photo_sorter_photos_inserted_total")
    private let batchTimer = Timer(label: "photo_sorter_ingest_batch_seconds")

    init(database: PhotoSorterDatabase, queue: any WorkQueue, config: ServiceConfig, logger: Logger,
         onWorkQueued: @escaping @Sendable () -> Void,
         onFacesRemoved: @escaping @Sendable () async throws -> Void) {
        self.database = database
        self.queue = queue
        self.config = config
        self.logger = logger
        self.onWorkQueued = onWorkQueued
        self.onFacesRemoved = onFacesRemoved
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
            var batchIndex = job.completedBatches
            var batch: [ScanEntry] = []
            for entry in scanner {
                if Task.isCancelled { return }
                if toSkip > 0 {
                    toSkip -= 1
                    continue
                }
                batch.append(entry)
                if batch.count == job.batchSize {
                    try await commit(batch, index: batchIndex, jobID: jobID, dryRun: job.dryRun)
                    batchIndex += 1
                    batch.removeAll(keepingCapacity: true)
                    try await waitForQueueRoom()
                }
            }
            if Task.isCancelled { return }
            if !batch.isEmpty { try await commit(batch, index: batchIndex, jobID: jobID, dryRun: job.dryRun) }
            try await database.sql.raw("""
                UPDATE ingest_jobs SET status = \(bind: job.dryRun ? "COMPLETED" : "SCANNED"), finished_at = \(bind: nowMs())
                WHERE job_id = \(bind: jobID)
                """).run()
            logger.info("ingest scan finished", metadata: ["job_id": "\(jobID)", "batches": "\(batchIndex + (batch.isEmpty ? 0 : 1))"])
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

    /// Backpressure: scanning waits while the queue holds more than the high watermark.
    private func waitForQueueRoom() async throws {
        while try await queue.pendingCount() > config.queueHighWatermark {
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    private struct ExistingPhoto: Decodable {
        let id: Int64
        let path: String
        let filesize: Int64
        let modifiedAt: Int64
        let sampleHash: String
    }

    /// Symlinks may point into the configured roots only (anywhere when any folder may be ingested).
    private var symlinkRoots: [String]? { config.allowedRoots.isEmpty ? nil : config.allowedRoots }

    /// Reads the start of each file: photos by content, the rest not queued with a reason.
    private func inspect(_ entries: [ScanEntry], jobID: String) -> (photos: [InspectedPhoto], notQueued: [NotQueuedEntry]) {
        var photos: [InspectedPhoto] = []
        var notQueued: [NotQueuedEntry] = []
        for entry in entries {
            switch entry {
            case .notQueued(let rejection):
                notQueued.append(rejection)
            case .file(let file):
                do throws(NotQueuedReason) {
                    let photo = try PhotoFileInspector.inspect(file)
                    if photo.extensionDisagrees {
                        logger.notice("extension does not match the content; analysed as its content", metadata: [
                            "job_id": "\(jobID)", "path": "\(file.path)", "format": "\(photo.format.rawValue)"])
                    }
                    photos.append(photo)
                } catch {
                    notQueued.append(NotQueuedEntry(path: file.path, reason: error))
                }
            }
        }
        return (photos, notQueued)
    }

    /// One batch: inspect files, then in one transaction insert new rows, re-queue changed ones, record the
    /// not-queued entries, the batch and its map rows, and advance the job's resume point.
    private func commit(_ entries: [ScanEntry], index: Int, jobID: String, dryRun: Bool) async throws {
        let started = ContinuousClock.now
        filesScanned.increment(by: entries.count)
        let (batch, notQueued) = inspect(entries, jobID: jobID)
        let rejected = notQueued.count
        let (newItems, removedFaces) = try await database.transaction { tx -> ([WorkItem], Int) in
            try await Self.record(notQueued, jobID: jobID, on: tx)
            let existing = batch.isEmpty ? [] : try await tx.select()
                .columns("id", "path", "filesize", "modified_at", "sample_hash").from("photos")
                .where("path", .in, batch.map(\.file.path))
                .all(decoding: ExistingPhoto.self, keyDecodingStrategy: .convertFromSnakeCase)
            let byPath = Dictionary(existing.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
            let fresh = batch.filter { byPath[$0.file.path] == nil }
            let changed = batch.filter {
                guard let old = byPath[$0.file.path] else { return false }
                return (old.filesize != $0.file.size || old.modifiedAt != $0.file.modifiedAtMs) && old.sampleHash != $0.sampleHash
            }
            let skipped = batch.count - fresh.count - changed.count
            if dryRun {
                try await self.advance(jobID, index: index, scanned: entries.count, inserted: fresh.count + changed.count,
                                       skipped: skipped, queued: 0, rejected: rejected, on: tx)
                return ([], 0)
            }
            let now = nowMs()
            var items: [WorkItem] = []
            if !fresh.isEmpty {
                var insert = tx.insert(into: "photos").columns(
                    "path", "filename", "format", "filesize", "modified_at", "sample_hash", "status", "retry_count", "attempt",
                    "created_at", "updated_at")
                for photo in fresh {
                    insert = insert.values(SQLBind(photo.file.path), SQLBind(photo.file.filename), SQLBind(photo.format.rawValue),
                                           SQLBind(photo.file.size), SQLBind(photo.file.modifiedAtMs), SQLBind(photo.sampleHash),
                                           SQLBind(PhotoStatus.ready.rawValue), SQLBind(0), SQLBind(0), SQLBind(now), SQLBind(now))
                }
                let rows = try await insert.ignoringConflicts(with: ["path"]).returning("id", "path", "attempt").all()
                items += try rows.map(WorkItem.init(row:))
            }
            var removed: [IdentityService.IndexChange] = []
            if !changed.isEmpty {
                // The removals go to the identity change log, whose sequence is allocated under the identity lock.
                try await IdentityService.lockAcrossInstances(tx, flavor: self.database.flavor)
            }
            for photo in changed {
                let (item, faces) = try await self.requeueChanged(photo, previous: byPath[photo.file.path]!, now: now, on: tx)
                items.append(item)
                removed += faces
            }
            // Unchanged files whose mtime moved (touch, copy) keep their results; record the new metadata.
            let changedPaths = Set(changed.map(\.file.path))
            for photo in batch where !changedPaths.contains(photo.file.path) {
                if let old = byPath[photo.file.path], old.filesize != photo.file.size || old.modifiedAt != photo.file.modifiedAtMs {
                    try await tx.raw("""
                        UPDATE photos SET filesize = \(bind: photo.file.size), modified_at = \(bind: photo.file.modifiedAtMs)
                        WHERE id = \(bind: old.id)
                        """).run()
                }
            }
            let batchID = try await tx.raw("""
                INSERT INTO ingest_batches (job_id, batch_index, photo_count, inserted_count, status, created_at, queued_at)
                VALUES (\(bind: jobID), \(bind: index), \(bind: entries.count), \(bind: items.count), 'QUEUED', \(bind: now), \(bind: now))
                ON CONFLICT (job_id, batch_index) DO UPDATE SET photo_count = excluded.photo_count
                RETURNING id
                """).first()!.decode(column: "id", as: Int64.self)
            let photoIDs = Set(items.map(\.photoID) + existing.map(\.id))
            if !photoIDs.isEmpty {
                var map = tx.insert(into: "photo_ingest_map").columns("photo_id", "job_id", "batch_id")
                for id in photoIDs.sorted() { map = map.values(SQLBind(id), SQLBind(jobID), SQLBind(batchID)) }
                try await map.ignoringConflicts(with: ["job_id", "photo_id"]).run()
            }
            try await self.advance(jobID, index: index, scanned: entries.count, inserted: fresh.count + changed.count,
                                   skipped: skipped, queued: items.count, rejected: rejected, on: tx)
            _ = try await IdentityService.log(removed, on: tx)
            return (items, removed.count)
        }
        if removedFaces > 0 { try await onFacesRemoved() }
        if !newItems.isEmpty {
            try await queue.enqueue(newItems, batch: IngestBatchRef(jobID: jobID, index: index))
            photosInserted.increment(by: newItems.count)
            onWorkQueued()
        }
        let elapsed = ContinuousClock.now - started
        batchTimer.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
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
            try await tx.raw("""
                UPDATE persons SET face_count = face_count - \(bind: count), photo_count = photo_count - 1, updated_at = \(bind: now)
                WHERE id = \(bind: person)
                """).run()
        }
        try await tx.raw("DELETE FROM photo_persons WHERE photo_id = \(bind: previous.id)").run()
        try await tx.raw("DELETE FROM embeddings WHERE photo_id = \(bind: previous.id)").run()
        try await MediaStore.removeImages(ofPhoto: previous.id, on: tx)
        let row = try await tx.raw("""
            UPDATE photos SET filesize = \(bind: photo.file.size), modified_at = \(bind: photo.file.modifiedAtMs),
                sample_hash = \(bind: photo.sampleHash), full_hash = NULL, status = 'READY', retry_count = 0, last_error = NULL,
                next_attempt_at = NULL, processing_started_at = NULL, no_faces = NULL, face_count = NULL, person_ids = NULL,
                width = NULL, height = NULL, updated_at = \(bind: now)
            WHERE id = \(bind: previous.id) RETURNING attempt
            """).first()!
        return (WorkItem(photoID: previous.id, path: photo.file.path, attempt: try row.decode(column: "attempt", as: Int.self)), faces)
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

    private func advance(_ jobID: String, index: Int, scanned: Int, inserted: Int, skipped: Int, queued: Int, rejected: Int,
                         on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            UPDATE ingest_jobs SET scanned_count = scanned_count + \(bind: scanned), inserted_count = inserted_count + \(bind: inserted),
                skipped_count = skipped_count + \(bind: skipped), queued_count = queued_count + \(bind: queued),
                rejected_count = rejected_count + \(bind: rejected), completed_batches = \(bind: index + 1)
            WHERE job_id = \(bind: jobID)
            """).run()
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
        let file = photo.file, hash = photo.sampleHash
        let now = nowMs()
        try await database.sql.raw("""
            INSERT INTO photos (path, filename, format, filesize, modified_at, sample_hash, status, retry_count, attempt, created_at, updated_at)
            VALUES (\(bind: file.path), \(bind: file.filename), \(bind: photo.format.rawValue), \(bind: file.size), \(bind: file.modifiedAtMs),
                \(bind: hash), 'PROCESSING', 0, 1, \(bind: now), \(bind: now))
            ON CONFLICT (path) DO NOTHING
            """).run()
        return try await database.sql.raw("SELECT id FROM photos WHERE path = \(bind: file.path)").first()!.decode(column: "id", as: Int64.self)
    }
}
