import Logging
import PhotoSorterCore
import SQLKit

/// Dates the photos a scan found unchanged but analysed before photos carried dates (`taken_at_source` NULL): the
/// ML service reads each one's header (`MLClient.takenDates`, no new analysis), and a photo without a date of its
/// own keeps its file's time, now marked `mtime`. Runs at the end of a scan, before the job counts as scanned, so
/// `sort` waits for it. When the ML service cannot be reached the photos stay as they are and the next scan tries
/// again.
struct TakenDateBackfill: Sendable {
    let database: PhotoSorterDatabase
    let ml: MLClient
    let logger: Logger

    /// Dates every undated, analysed photo of `jobID`. Returns how many it dated.
    @discardableResult
    func run(jobID: String) async -> Int {
        var dated = 0
        var afterID: Int64 = 0
        do {
            while true {
                let photos = try await database.sql.raw("""
                    SELECT p.id, p.path, p.modified_at FROM photo_ingest_map m JOIN photos p ON p.id = m.photo_id
                    WHERE m.job_id = \(bind: jobID) AND p.id > \(bind: afterID) AND p.taken_at_source IS NULL
                        AND p.status IN ('PROCESSED', 'FAILED')
                    ORDER BY p.id LIMIT \(bind: MLClient.takenDatesBatch)
                    """).all().map { row in
                    (id: try row.decode(column: "id", as: Int64.self), path: try row.decode(column: "path", as: String.self),
                     modifiedAtMs: try row.decode(column: "modified_at", as: Int64.self))
                }
                guard let last = photos.last else { break }
                let answers = try await ml.takenDates(paths: photos.map(\.path))
                try await database.transaction { tx in
                    for (photo, answer) in zip(photos, answers) {
                        if let error = answer.error {
                            logger.debug("photo header unreadable; dated by its file", metadata: ["photo_id": "\(photo.id)", "error": "\(error)"])
                        }
                        let taken = answer.taken ?? TakenDate.fileTime(modifiedAtMs: photo.modifiedAtMs)
                        try await PhotosTable.date(photo.id, taken: taken, on: tx)
                        try await PhotoPersonsTable.retake(photo: photo.id, takenAt: taken.local, on: tx)
                    }
                }
                dated += photos.count
                afterID = last.id
            }
        } catch {
            logger.warning("photos analysed before dates were read stay undated until the next scan",
                           metadata: ["job_id": "\(jobID)", "dated": "\(dated)", "error": "\(error)"])
        }
        if dated > 0 { logger.info("dated photos analysed before", metadata: ["job_id": "\(jobID)", "photos": "\(dated)"]) }
        return dated
    }
}
