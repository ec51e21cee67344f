import Foundation
import Logging
import PhotoSorterCore
import Vapor

/// What `photo-sorter prune` found or deleted.
public struct PruneResult: Content, Sendable, Equatable {
    /// Missing photos older than the limit: deleted, or (dry run) what would be.
    public var photos: Int
    public var dryRun: Bool
    /// Photos still missing but newer than the limit, kept.
    public var keptMissing: Int

    enum CodingKeys: String, CodingKey {
        case photos
        case dryRun = "dry_run"
        case keptMissing = "kept_missing"
    }
}

/// Deletes photos that have been MISSING for long enough, for good: the row, its parked faces and everything
/// that belongs to it. Until then a missing photo comes back whole when its content reappears.
public struct MissingPhotos: Sendable {
    let database: PhotoSorterDatabase
    let logger: Logger

    /// Missing photos whose file has been gone for more than `olderThanSeconds`, deleted (or only counted).
    public func prune(olderThanSeconds: Double, dryRun: Bool) async throws -> PruneResult {
        let before = nowMs() - Int64(olderThanSeconds * 1000)
        let ids = try await PhotosTable.missing(before: before, on: database.sql)
        let allMissing = try await database.sql.raw("SELECT COUNT(*) AS n FROM photos WHERE status = 'MISSING'").first()!
            .decode(column: "n", as: Int.self)
        if !dryRun {
            for start in stride(from: 0, to: ids.count, by: 1_000) {
                let chunk = Array(ids[start..<min(start + 1_000, ids.count)])
                try await database.transaction { tx in try await PhotosTable.delete(chunk, on: tx) }
            }
            logger.info("missing photos pruned", metadata: ["photos": "\(ids.count)", "older_than_s": "\(olderThanSeconds)"])
        }
        return PruneResult(photos: ids.count, dryRun: dryRun, keptMissing: allMissing - ids.count)
    }
}
