import ArgumentParser
import Foundation
import PhotoSorterServer

/// `photo-sorter sort <folder>`: the whole pipeline on one machine. Starts the service in process and the
/// ML service as a child when none answers, ingests the folder, shows progress, prints a summary.
/// Running it again resumes: finished photos are skipped and every person keeps its id. At the end it re-clusters
/// the whole library (unless `--no-recluster`, or nothing changed since the last re-cluster), which keeps ids and
/// every correction.
struct SortCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sort", abstract: "Sort the faces of a folder into persons.")

    @ArgumentParser.Argument(help: "Folder of photos (scanned recursively).")
    var folder: String

    @OptionGroup var options: ConfigOptions

    @ArgumentParser.Flag(help: "Print a progress line every few seconds instead of a live bar.")
    var noProgress = false

    @ArgumentParser.Option(help: "Write the summary as JSON to this file.")
    var summaryJson: String?

    @ArgumentParser.Flag(help: "Skip the closing re-cluster of all faces (`photo-sorter recluster` runs it later).")
    var noRecluster = false

    @ArgumentParser.Flag(help: "Keep serving the people web page after the sort, until Ctrl-C.")
    var browse = false

    @ArgumentParser.Flag(help: "After the sort, keep following the folder (watch mode: new, changed, moved and deleted photos are taken in within seconds) until Ctrl-C.")
    var watch = false

    func run() async throws {
        var loaded = try options.load()
        let folderPath = try resolvedFolder()
        // The ML child reads only the sorted folder (unless roots are configured): the scan follows symlinks no
        // further, so a link out of the folder is listed as not queued instead of failing at the ML service.
        if loaded.allowedRoots.isEmpty { loaded.allowedRoots = [folderPath] }
        let config = loaded, timeline = SortTimeline()
        try await LocalPipeline.run(config: config, allowedRoot: folderPath, timeline: timeline,
                                    chooseModel: { try MLServiceProcess.model(forSortWith: config, stored: $0.identity.model) }) {
            run in try await sort(run, config: config, timeline: timeline)
        }
    }

    private func resolvedFolder() throws -> String {
        URL(fileURLWithPath: folder).standardizedFileURL.resolvingSymlinksInPath().path
    }

    private func sort(_ run: LocalPipeline.Run, config: ServiceConfig, timeline: SortTimeline) async throws -> Int32 {
        let services = run.services, interrupted = run.interrupted
        let started = Date()
        let startedMs = Int64(started.timeIntervalSince1970 * 1000)
        timeline.mark(.scanStarted)
        let jobID = try await services.ingest.start(IngestRequest(path: folder, jobName: "sort"))
        let progress = ProgressDisplay(live: !noProgress && isatty(STDERR_FILENO) != 0)
        var status = try await services.ingestStatus(jobID)
        while !status.done && !interrupted.isSet {
            progress.show(status, elapsed: Date().timeIntervalSince(started), persons: services.identity.personCount)
            await services.dispatcher.waitForDrain(upToMs: 300)
            try Task.checkCancellation()
            status = try await services.ingestStatus(jobID)
        }
        progress.show(status, elapsed: Date().timeIntervalSince(started), persons: services.identity.personCount)
        progress.finish()
        if interrupted.isSet {
            writeToStandardError("\ninterrupted: progress is saved in \(config.databaseURL); run the same command again to resume.\n")
            return 130
        }
        if status.status == "ROOT_UNAVAILABLE" {
            writeToStandardError((status.lastError ?? "root unavailable") + "\n")
            return 3
        }
        let wallSeconds = Date().timeIntervalSince(started)
        timeline.mark(.sortDone)
        let mlWorkers = await services.ml.health()?["workers"]?.number.map { Int($0) }
        // Every photo is back: the ML child stops while the re-cluster and the summary run (watching needs it).
        if !watch && !browse { run.releaseML() }
        timeline.mark(.firstInFlight, at: services.dispatcher.firstAcceptedAtMs)
        timeline.mark(.lastCallback, at: try await services.lastCallbackMs(ofJob: jobID, since: startedMs))
        var recluster: ReclusterResult?
        if !noRecluster {
            if try await services.recluster.isCurrent() {
                writeToStandardError("re-cluster skipped: nothing changed since the last one\n")
            } else {
                writeToStandardError("re-clustering all faces of the library…\n")
                recluster = try await services.recluster.run()
                writeToStandardError(recluster!.summaryLine + "\n")
            }
        }
        let summary = try await SortSummary.collect(services: services, jobID: jobID, status: status, config: config,
                                                    startedMs: startedMs, wallSeconds: wallSeconds, mlWorkers: mlWorkers,
                                                    recluster: recluster,
                                                    timeline: timeline)
        print(summary.text)
        if let summaryJson {
            try JSONEncoder().encode(summary).write(to: URL(fileURLWithPath: summaryJson))
        }
        if watch {
            services.watcher.follow(try resolvedFolder())
            writeToStandardError("watching \(folder) for changes (Ctrl-C stops)\n")
        }
        if browse || watch {
            writeToStandardError("browse: \(config.browseURL)  (Ctrl-C stops)\n")
            while !interrupted.isSet { try await Task.sleep(for: .milliseconds(250)) }
        } else {
            writeToStandardError("browse: \(config.browseURL)  (after `photo-sorter serve --database \(DatabaseLocation.describe(config))`, or sort with --browse)\n")
        }
        return summary.failed > 0 ? 1 : 0
    }
}

/// Set by SIGINT/SIGTERM so the `sort` and `reprocess` loops stop and shut everything down cleanly.
final class InterruptFlag: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var set = false

    init() {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in self?.lock.withLock { self?.set = true } }
            source.resume()
            sources.append(source)
        }
    }

    var isSet: Bool { lock.withLock { set } }
}

/// Where `sort` reports the database and keeps the ML child's log, from the configured database URL.
enum DatabaseLocation {
    /// The absolute SQLite file, or the PostgreSQL URL as given.
    static func describe(_ config: ServiceConfig) -> String {
        let (flavor, location) = DatabaseFlavor.parse(config.databaseURL)
        return flavor == .postgres ? location : URL(fileURLWithPath: location).standardizedFileURL.path
    }

    /// Folder holding the SQLite file (or ./data for PostgreSQL), where the ML child's log goes too.
    static func directory(of config: ServiceConfig) -> String {
        let (flavor, location) = DatabaseFlavor.parse(config.databaseURL)
        return flavor == .postgres ? "./data" : URL(fileURLWithPath: location).deletingLastPathComponent().path
    }
}

/// Progress and notices go to standard error so standard output carries only the summary.
func writeToStandardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}
