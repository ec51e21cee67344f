import Foundation
import PhotoSorterCore

extension IngestService {
    /// A scan the library watcher asks for: `folder` (a watch root or a folder inside one; recursive or not) is
    /// scanned like a folder ingest, and what vanished from it is swept, but the unplugged-drive rule is judged on
    /// `root` (the watch root): a `folder` that is gone while `root` is there means its photos vanished. Files in
    /// `unsettled` (still being written) are neither taken nor swept. Returns the job id (`requested_by` "watch").
    func startWatchScan(folder: String, recursive: Bool, root: String, excluding unsettled: Set<String>) async throws -> String {
        let jobID = try await createJob(path: folder, root: folder == root ? nil : root, recursive: recursive, batchSize: config.batchSize,
                                        dryRun: false, name: "watch", requestedBy: "watch")
        if !unsettled.isEmpty { unsettledFiles.withLockedValue { $0[jobID] = unsettled } }
        launch(jobID)
        return jobID
    }
}
