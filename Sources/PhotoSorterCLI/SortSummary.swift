import Foundation
import PhotoSorterServer

/// What `sort` reports at the end, as text and (with --summary-json) as JSON.
struct SortSummary: Encodable {
    var database: String
    /// The ingest job, for GET /ingest-jobs/{id}/not-queued after the sort (not in the JSON).
    var jobID: String
    var photosTotal: Int
    var processed: Int
    var failed: Int
    var noFaces: Int
    var faces: Int
    /// Faces of this sort's photos in no person: too unsure to start one, and they matched no one.
    var unsortedFaces: Int
    /// Persons after the closing re-cluster.
    var persons: Int
    /// Face model of the library (`arcface`, `dlib`); nil when no face was stored yet.
    var model: String?
    var failures: [PhotoFailure]
    /// Every entry of the folder that was not queued (not an image, empty, unreadable, a FIFO…), with its reason.
    var notQueued: [NotQueuedFile]
    /// Time of the ingest; the closing re-cluster's own time is in `recluster`.
    var wallSeconds: Double
    /// Sum of the ML service's own per-photo time (decode + detect + embed) for photos finished in this run.
    var mlSeconds: Double
    /// ML worker processes, to turn `mlSeconds` into wall time: overhead ≈ 1 − mlSeconds / mlWorkers / wallSeconds.
    var mlWorkers: Int?
    /// What the closing re-cluster changed; null in the JSON when `--no-recluster` skipped it.
    var recluster: ReclusterResult?
    /// How the library followed the files since the last scan (`IngestStatus`): photos moved, missing, restored,
    /// and copies that reused an analysis.
    var moved: Int
    var missing: Int
    var restored: Int
    var copies: Int
    /// Names read from XMP face regions: applied, in conflict with a user's correction, pending.
    var xmpNames: XMPNamesSummary
    /// When the command reached each step of its start and of the sort (`SortTimeline`).
    var timeline: SortTimeline

    enum CodingKeys: String, CodingKey {
        case database, processed, failed, faces, persons, model, failures, recluster, moved, missing, restored, copies, timeline
        case photosTotal = "photos_total"
        case noFaces = "no_faces"
        case unsortedFaces = "unsorted_faces"
        case notQueued = "not_queued"
        case notQueuedCount = "not_queued_count"
        case wallSeconds = "wall_seconds"
        case mlSeconds = "ml_seconds"
        case mlWorkers = "ml_workers"
        case xmpNames = "xmp_names"
    }

    static func collect(services: PhotoSorterServices, jobID: String, status: IngestStatus, config: ServiceConfig,
                        startedMs: Int64, wallSeconds: Double, mlWorkers: Int?, recluster: ReclusterResult?,
                        timeline: SortTimeline) async throws -> SortSummary {
        await services.xmpNames.drain()
        return SortSummary(
            database: DatabaseLocation.describe(config), jobID: jobID, photosTotal: status.processed + status.failed + status.ready + status.processing,
            processed: status.processed, failed: status.failed, noFaces: status.noFaces, faces: status.faces,
            unsortedFaces: try await services.unsortedFaces(ofJob: jobID),
            persons: services.identity.personCount, model: services.identity.model?.name, failures: try await services.failures(ofJob: jobID),
            notQueued: try await services.notQueued(ofJob: jobID),
            wallSeconds: wallSeconds, mlSeconds: try await services.mlSeconds(ofJob: jobID, since: startedMs), mlWorkers: mlWorkers,
            recluster: recluster, moved: status.moved, missing: status.missing, restored: status.restored, copies: status.copies,
            xmpNames: try await services.xmpNames.summary(conflictLimit: 10_000), timeline: timeline)
    }

    /// As synthesised, except that `recluster` is written as null when it was skipped.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(database, forKey: .database)
        try container.encode(photosTotal, forKey: .photosTotal)
        try container.encode(processed, forKey: .processed)
        try container.encode(failed, forKey: .failed)
        try container.encode(noFaces, forKey: .noFaces)
        try container.encode(faces, forKey: .faces)
        try container.encode(unsortedFaces, forKey: .unsortedFaces)
        try container.encode(persons, forKey: .persons)
        try container.encodeIfPresent(model, forKey: .model)
        try container.encode(failures, forKey: .failures)
        try container.encode(notQueued, forKey: .notQueued)
        try container.encode(notQueued.count, forKey: .notQueuedCount)
        try container.encode(wallSeconds, forKey: .wallSeconds)
        try container.encode(mlSeconds, forKey: .mlSeconds)
        try container.encodeIfPresent(mlWorkers, forKey: .mlWorkers)
        try container.encode(recluster, forKey: .recluster)
        try container.encode(moved, forKey: .moved)
        try container.encode(missing, forKey: .missing)
        try container.encode(restored, forKey: .restored)
        try container.encode(copies, forKey: .copies)
        try container.encode(xmpNames, forKey: .xmpNames)
        try container.encode(timeline, forKey: .timeline)
    }

    var text: String {
        var lines = [
            "photos:   \(photosTotal) (\(processed) processed, \(noFaces) without faces, \(failed) failed)",
            "files:    \(moved) moved, \(missing) missing, \(restored) restored, \(copies) copies (analysis reused)",
            "faces:    \(faces)" + (unsortedFaces > 0 ? " (\(unsortedFaces) unsorted: too unsure to start a person; drawn on their photos)" : ""),
            "persons:  \(persons)" + (model.map { " (face model: \($0))" } ?? ""),
            "time:     " + String(format: "%.1f s", wallSeconds),
            "re-cluster: " + (recluster.map { "\($0.facesMoved) faces moved, \($0.personsCreated) new persons, \($0.personsMerged) merged ("
                + String(format: "%.1f s", $0.seconds) + ")" } ?? "skipped"),
            "database: \(database)",
        ]
        if xmpNames.applied + xmpNames.conflicts + xmpNames.pending > 0 {
            lines.append("names from XMP face regions: \(xmpNames.applied) applied, \(xmpNames.conflicts) in conflict with your corrections"
                + (xmpNames.pending > 0 ? ", \(xmpNames.pending) pending" : ""))
            lines += xmpNames.conflictList.prefix(50).map { "  \(Self.oneLine($0.path)): \"\($0.name)\" not applied: \($0.reason)" }
            if xmpNames.conflicts > 50 { lines.append("  … and \(xmpNames.conflicts - 50) more (GET /xmp/names)") }
        }
        if !failures.isEmpty {
            lines.append("failures:")
            lines += failures.prefix(50).map { "  \(Self.oneLine($0.path)): \($0.error ?? "unknown error")" }
            if failures.count > 50 { lines.append("  … and \(failures.count - 50) more (GET /photos?status=FAILED)") }
        }
        if !notQueued.isEmpty {
            lines.append("not queued: \(notQueued.count) \(notQueued.count == 1 ? "file" : "files") (not analysed)")
            lines += notQueued.prefix(Self.notQueuedLines).map { "  \(Self.oneLine($0.path)): \($0.reason)" }
            if notQueued.count > Self.notQueuedLines {
                lines.append("  … and \(notQueued.count - Self.notQueuedLines) more (see --summary-json or GET /ingest-jobs/\(jobID)/not-queued)")
            }
        }
        return lines.joined(separator: "\n")
    }

    static let notQueuedLines = 200

    /// A path on one line: a line break in a file name is shown as `\n`.
    private static func oneLine(_ path: String) -> String {
        path.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
    }
}
