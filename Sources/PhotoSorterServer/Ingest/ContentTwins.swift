import Logging
import PhotoSorterCore
import SQLKit

/// Photos with one content (the same full hash: a file and its copies) share one analysis. A scan copies the
/// analysis of an analysed twin at once (`IngestService`); a twin queued before any was analysed waits, at
/// dispatch, for the lowest-id twin still in the queue, then takes its analysis without an ML call. If that twin
/// fails, the next one is analysed itself, so nothing waits forever.
struct ContentTwins: Sendable {
    let database: PhotoSorterDatabase
    /// Called after faces were copied: the identity index catches up.
    let onFacesChanged: @Sendable () async throws -> Void
    let logger: Logger

    /// What to do with a claimed photo.
    enum Decision: Equatable {
        /// No twin has or is getting an analysis: send it to the ML service.
        case analyse
        /// A twin with a lower id is queued or being analysed: put this one back for a while.
        case wait
        /// A twin's analysis was copied: PROCESSED, nothing to send.
        case copied
    }

    func decide(_ item: WorkItem) async throws -> Decision {
        // One query: the photo's stored size and time, and its twins (none when it has no full hash).
        let rows = try await database.sql.raw("""
            SELECT p.filesize, p.modified_at, t.id, t.status, t.face_count FROM photos p LEFT JOIN photos t
                ON t.sample_hash = p.sample_hash AND t.full_hash = p.full_hash AND t.id <> p.id
            WHERE p.id = \(bind: item.photoID) ORDER BY t.id
            """).all()
        // A file gone or rewritten since its scan is no longer its twin's content: the ML service says what it is now.
        guard let first = rows.first, Self.unchanged(item.path, size: try first.decode(column: "filesize", as: Int64.self),
                                                     modifiedAtMs: try first.decode(column: "modified_at", as: Int64.self)) else {
            return .analyse
        }
        let twins = try rows.compactMap { row -> (id: Int64, status: String, analysed: Bool)? in
            guard let id = try row.decode(column: "id", as: Int64?.self) else { return nil }
            return (id, try row.decode(column: "status", as: String.self), try row.decode(column: "face_count", as: Int?.self) != nil)
        }
        if let source = twins.first(where: { $0.status == PhotoStatus.processed.rawValue && $0.analysed }) {
            let copied = try await database.transaction { tx in
                try await IdentityService.lockAcrossInstances(tx, flavor: database.flavor)
                guard try await PhotosTable.adoptAnalysis(item.photoID, of: source.id, now: nowMs(), on: tx) else { return false }
                try await Self.copyFaces(of: source.id, to: item.photoID, now: nowMs(), on: tx)
                return true
            }
            guard copied else { return .analyse }
            try await onFacesChanged()
            logger.info("analysis taken from a twin", metadata: ["photo_id": "\(item.photoID)", "twin": "\(source.id)"])
            return .copied
        }
        let waiting = [PhotoStatus.ready.rawValue, PhotoStatus.processing.rawValue]
        return twins.contains { $0.id < item.photoID && waiting.contains($0.status) } ? .wait : .analyse
    }

    /// Whether the file at `path` still has the size and modification time its scan stored.
    private static func unchanged(_ path: String, size: Int64, modifiedAtMs: Int64) -> Bool {
        guard case .file(let file) = DirectoryScanner.entry(atPath: path, allowedRoots: nil) else { return false }
        return file.size == size && file.modifiedAtMs == modifiedAtMs
    }

    /// The faces of `source` copied onto `target` (same persons, corrections and marks), and the persons'
    /// counts and the photo's persons kept in step. Call under the identity lock.
    static func copyFaces(of source: Int64, to target: Int64, now: Int64, on tx: any SQLDatabase) async throws {
        try await FacesTable.copy(photo: source, to: target, now: now, on: tx)
        try await PersonBookkeeping.refresh(photos: [target], persons: try await FacesTable.persons(ofPhoto: target, on: tx), on: tx)
    }
}
