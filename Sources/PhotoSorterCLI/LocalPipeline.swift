import ArgumentParser
import Foundation
import PhotoSorterCore
import PhotoSorterServer
import Vapor

/// The whole pipeline on this machine, as `sort` and `reprocess` run it: the service in process (database,
/// migrations, workers) and an ML service running the chosen model (a child process when none answers).
enum LocalPipeline {
    /// What `body` runs with. `releaseML()`: the ML service is no longer needed (every photo is back), so an ML
    /// child started for this run begins to stop now, while `body` finishes without it (`sort`'s re-cluster and
    /// summary); the shutdown waits for its exit as before. Dispatch after it finds no ML service and requeues.
    struct Run: Sendable {
        let services: PhotoSorterServices
        let model: FaceModel
        let interrupted: InterruptFlag
        let releaseML: @Sendable () -> Void
    }

    /// Starts everything, runs `body`, and always shuts down in order; a non-zero code from `body` becomes the
    /// process's exit status. `chooseModel` sees the configured services (e.g. the database's model). `body` starts
    /// while an ML child still loads its models; a failure there ends it with the reason.
    static func run(config: ServiceConfig, allowedRoot: String?, timeline: SortTimeline = SortTimeline(),
                    chooseModel: (PhotoSorterServices) throws -> FaceModel,
                    _ body: @escaping @Sendable (Run) async throws -> Int32) async throws {
        let app = try await Application.makeForCommandLine(arguments: ["photo-sorter", "serve"])
        var mlChild: MLServiceProcess?
        let interrupted = InterruptFlag()
        let exitCode: Int32
        do {
            // The ML child starts first, on the model asked for (else the default): it loads while the database
            // opens. The database may hold another model; `ensure` then replaces it.
            mlChild = try await MLServiceProcess.startEarly(model: config.requestedModel ?? .default, config: config,
                                                            allowedRoot: allowedRoot, timeline: timeline)
            try await configure(app, config: config)
            timeline.mark(.databaseReady)
            let model = try chooseModel(app.photoSorter)
            mlChild = try await MLServiceProcess.ensure(model: model, config: config, services: app.photoSorter,
                                                        allowedRoot: allowedRoot, timeline: timeline, started: mlChild)
            try await app.startup()
            let services = app.photoSorter
            exitCode = try await withThrowingTaskGroup(of: Int32?.self) { [mlChild] group in
                if let mlChild { group.addTask { try await mlChild.modelsLoaded(ml: services.ml); return nil } }
                let run = Run(services: services, model: model, interrupted: interrupted,
                              releaseML: { mlChild?.release() })
                group.addTask { try await body(run) }
                while let result = try await group.next() {
                    if let code = result {
                        group.cancelAll()
                        return code
                    }
                }
                preconditionFailure("the body's task returns a code")
            }
        } catch {
            await shutdown(app, mlChild: mlChild)
            throw error
        }
        await shutdown(app, mlChild: mlChild)
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    /// Stops scanning and dispatch, then the ML child (no more callbacks), then the server and database.
    /// Photos still PROCESSING are returned to the queue at the next start.
    private static func shutdown(_ app: Application, mlChild: MLServiceProcess?) async {
        await app.photoSorterIfConfigured?.stopBackgroundWork()
        mlChild?.stop()
        try? await app.asyncShutdown()
    }
}
