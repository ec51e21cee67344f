import Foundation
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
        // A file gone or rewritten since its scan is no longer its twin's content: the ML service says what it is now.
        guard Self.unchanged(item.path, since: try await database.sql.raw("""
            SELECT filesize, modified_at FROM photos WHERE id = \(bind: item.photoID)
            """).first()) else { return .analyse }
        let twins = try await database.sql.raw("""
            SELECT t.id, t.status, t.face_count FROM photos p JOIN photos t
                ON t.sample_hash = p.sample_hash AND t.full_hash = p.full_hash AND t.id <> p.id
            WHERE p.id = \(bind: item.photoID) ORDER BY t.id
            """).all().map {
            (id: try $0.decode(column: "id", as: Int64.self), status: try $0.decode(column: "status", as: String.self),
             analysed: try $0.decode(column: "face_count", as: Int?.self) != nil)
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

    /// Whether the file at `path` still has the size and modification time its scan stored (`row`).
    private static func unchanged(_ path: String, since row: (any SQLRow)?) -> Bool {
        guard let row, let size = try? row.decode(column: "filesize", as: Int64.self),
              let modified = try? row.decode(column: "modified_at", as: Int64.self) else { return false }
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        return Int64(info.st_size) == size && Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000 == modified
    }

    /// The faces of `source` copied onto `target` (same persons, corrections and marks), and the persons'
    /// counts and the photo's persons kept in step. Call under the identity lock.
    static func copyFaces(of source: Int64, to target: Int64, now: Int64, on tx: any SQLDatabase) async throws {
        try await FacesTable.copy(photo: source, to: target, now: now, on: tx)
        try await PersonBookkeeping.refresh(photos: [target], persons: try await FacesTable.persons(ofPhoto: target, on: tx), on: tx)
    }
}
