import Foundation
import PhotoSorterServer

/// What `sort` reports at the end, as text and (with --summary-json) as JSON.
struct SortSummary: Encodable {
    var database: String
    var photosTotal: Int
    var processed: Int
    var failed: Int
    var noFaces: Int
    var faces: Int
    var persons: Int
    /// Face model of the library (`arcface`, `dlib`); nil when no face was stored yet.
    var model: String?
    var failures: [PhotoFailure]
    var wallSeconds: Double
    /// Sum of the ML service's own per-photo time (decode + detect + embed) for photos finished in this run.
    var mlSeconds: Double
    /// ML worker processes, to turn `mlSeconds` into wall time: overhead ≈ 1 − mlSeconds / mlWorkers / wallSeconds.
    var mlWorkers: Int?

    enum CodingKeys: String, CodingKey {
        case database, processed, failed, faces, persons, model, failures
        case photosTotal = "photos_total"
        case noFaces = "no_faces"
        case wallSeconds = "wall_seconds"
        case mlSeconds = "ml_seconds"
        case mlWorkers = "ml_workers"
    }

    static func collect(services: PhotoSorterServices, jobID: String, status: IngestStatus, config: ServiceConfig,
                        startedMs: Int64, wallSeconds: Double) async throws -> SortSummary {
        let workers = await services.ml.health()?["workers"]?.number.map { Int($0) }
        return SortSummary(
            database: DatabaseLocation.describe(config), photosTotal: status.processed + status.failed + status.ready + status.processing,
            processed: status.processed, failed: status.failed, noFaces: status.noFaces, faces: status.faces,
            persons: services.identity.personCount, model: services.identity.model?.name, failures: try await services.failures(ofJob: jobID),
            wallSeconds: wallSeconds, mlSeconds: try await services.mlSeconds(ofJob: jobID, since: startedMs), mlWorkers: workers)
    }

    var text: String {
        var lines = [
            "photos:   \(photosTotal) (\(processed) processed, \(noFaces) without faces, \(failed) failed)",
            "faces:    \(faces)",
            "persons:  \(persons)" + (model.map { " (face model: \($0))" } ?? ""),
            "time:     " + String(format: "%.1f s", wallSeconds),
            "database: \(database)",
        ]
        if !failures.isEmpty {
            lines.append("failures:")
            lines += failures.prefix(50).map { "  \($0.path): \($0.error ?? "unknown error")" }
            if failures.count > 50 { lines.append("  … and \(failures.count - 50) more (GET /photos?status=FAILED)") }
        }
        return lines.joined(separator: "\n")
    }
}
