import ArgumentParser
import Foundation
import PhotoSorterCore
import PhotoSorterServer

/// `photo-sorter reprocess [--model M]`: re-analyses every photo of the library with a face model and rebuilds
/// the persons, keeping person ids wherever the new grouping allows. Ctrl-C stops; the same command resumes.
struct ReprocessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reprocess",
        abstract: "Re-analyse every photo with a face model (e.g. to switch models) and rebuild persons, keeping their ids.")

    @OptionGroup var options: ConfigOptions

    @ArgumentParser.Flag(help: "Print a progress line every few seconds instead of a live bar.")
    var noProgress = false

    func run() async throws {
        let config = try options.load()
        try await LocalPipeline.run(config: config, allowedRoot: nil,
                                    chooseModel: { config.requestedModel ?? $0.identity.model ?? .default }) {
            run in try await reprocess(run.services, model: run.model, interrupted: run.interrupted, config: config)
        }
    }

    private func reprocess(_ services: PhotoSorterServices, model: FaceModel, interrupted: InterruptFlag,
                           config: ServiceConfig) async throws -> Int32 {
        let started = Date()
        var status = try await services.reprocess.start(model: model)
        writeToStandardError("reprocessing \(status.total) photos with \(model) (job \(status.jobID))\n")
        let progress = ProgressDisplay(live: !noProgress && isatty(STDERR_FILENO) != 0)
        while !status.done && !interrupted.isSet {
            progress.show(status, elapsed: Date().timeIntervalSince(started))
            try await Task.sleep(for: .milliseconds(300))
            status = try await services.reprocess.status(status.jobID)
        }
        progress.show(status, elapsed: Date().timeIntervalSince(started))
        progress.finish()
        if interrupted.isSet {
            writeToStandardError("\ninterrupted: progress is saved in \(config.databaseURL); run the same command again to resume.\n")
            return 130
        }
        guard let result = status.result else { return 1 }
        print("""
            reprocessed with \(model) in \(ProgressDisplay.duration(Date().timeIntervalSince(started)))
              photos analysed:  \(result.photos) (\(result.photosFailed) failed)
              faces:            \(result.faces)
              persons:          \(result.persons) (\(result.personsKept) kept their id, \(result.personsCreated) new, \(result.personsRemoved) absorbed)
            """)
        return result.photosFailed > 0 ? 1 : 0
    }
}
