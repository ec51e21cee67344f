import ArgumentParser
import Foundation
import PhotoSorterCore
import PhotoSorterServer

/// The Python ML service as a child process, started by `sort` when nothing answers at the ML URL. It watches this
/// process and shuts down when it is gone (PHOTO_SORTER_ML_PARENT_PID), so a killed `sort` leaves nothing running.
final class MLServiceProcess: @unchecked Sendable {
    private let process = Process()
    private let logFile: String
    /// The model it runs.
    let model: FaceModel
    /// How long the child may take to listen and then to load its models.
    static let startTimeout: Duration = .seconds(120)

    /// Finds `ml-service/.venv/bin/python`: `PHOTO_SORTER_ML_PYTHON`, else upward from the working
    /// directory and from the executable (the binary lives in `.build/<config>/` of the repository).
    static func locatePython() -> String? {
        let env = ProcessInfo.processInfo.environment
        if let python = env["PHOTO_SORTER_ML_PYTHON"] { return python }
        let starts = [FileManager.default.currentDirectoryPath,
                      URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path]
        for start in starts {
            var directory = URL(fileURLWithPath: start)
            for _ in 0..<6 {
                let candidate = directory.appendingPathComponent("ml-service/.venv/bin/python").path
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
                directory.deleteLastPathComponent()
            }
        }
        return nil
    }

    /// The model `sort` runs: the configured one (`--model`, `PHOTO_SORTER_ML_MODEL`), else the one the database
    /// holds, else the default. A configured model that differs from the database's is refused with the way out.
    static func model(forSortWith config: ServiceConfig, stored: FaceModel?) throws -> FaceModel {
        let model = config.requestedModel ?? stored ?? .default
        if let stored, stored != model {
            throw ValidationError("the database holds faces of the \(stored.name) model, so it cannot sort with \(model.name): "
                + "faces of two models are never compared. Sort with --model \(stored.name), or switch the whole library with "
                + "`photo-sorter reprocess --model \(model.name)`.")
        }
        return model
    }

    /// Starts a child running `model` before the service opens its database, when nothing listens at the first ML
    /// URL: its start (Python, imports, the models: ~1 s on 2 cores) then overlaps the service's own (migrations, the
    /// identity index: seconds on a large library). `ensure` adopts it, or replaces it when the database turns out to
    /// hold another model. Nil when something already listens there (`ensure` checks what).
    static func startEarly(model: FaceModel, config: ServiceConfig, allowedRoot: String?,
                           timeline: SortTimeline) async throws -> MLServiceProcess? {
        guard await !MLClient.listens(at: config.mlServiceURLs[0]) else { return nil }
        return try spawn(model: model, config: config, allowedRoot: allowedRoot, timeline: timeline)
    }

    /// Makes sure an ML service running `model` answers at the first ML URL: the child `startEarly` started when it
    /// runs that model, else one that already runs there, else a new child (log next to the database); returns once
    /// it listens. Its workers may still be loading their models: it queues photos meanwhile, so the sort starts at
    /// once (`modelsLoaded` reports a failure there).
    static func ensure(model: FaceModel, config: ServiceConfig, services: PhotoSorterServices, allowedRoot: String?,
                       timeline: SortTimeline, started early: MLServiceProcess?) async throws -> MLServiceProcess? {
        if let early {
            if early.model == model { return try await listening(early, services: services, timeline: timeline) }
            early.stop()  // the database holds faces of another model
        }
        if await services.ml.listens(), await services.ml.health() != nil {
            timeline.mark(.mlListening)
            if let running = await services.ml.model(), running != model.name {
                throw ValidationError("the ML service at \(config.mlServiceURLs[0]) runs the \(running) model, not \(model.name); "
                    + "stop it or restart it with PHOTO_SORTER_ML_MODEL=\(model.name)")
            }
            writeToStandardError("using the ML service already running at \(config.mlServiceURLs[0])\n")
            return nil
        }
        let child = try spawn(model: model, config: config, allowedRoot: allowedRoot, timeline: timeline)
        return try await listening(child, services: services, timeline: timeline)
    }

    private static func spawn(model: FaceModel, config: ServiceConfig, allowedRoot: String?,
                              timeline: SortTimeline) throws -> MLServiceProcess {
        guard let python = locatePython() else {
            throw ValidationError("No ML service answers at \(config.mlServiceURLs[0]) and ml-service/.venv was not found; run scripts/install-ml.sh or set PHOTO_SORTER_ML_PYTHON.")
        }
        let logFile = URL(fileURLWithPath: DatabaseLocation.directory(of: config)).appendingPathComponent("ml-service.log").path
        let child = try MLServiceProcess(python: python, model: model, mlURL: URL(string: config.mlServiceURLs[0])!,
                                         serviceURL: config.callbackBaseURL, allowedRoot: allowedRoot,
                                         sharedSecret: config.sharedSecret, logFile: logFile)
        timeline.mark(.mlSpawned)
        return child
    }

    /// Returns `child` once it listens; throws its reason when it exits first, or after `startTimeout`.
    private static func listening(_ child: MLServiceProcess, services: PhotoSorterServices,
                                  timeline: SortTimeline) async throws -> MLServiceProcess {
        writeToStandardError("starting the ML service with the \(child.model.name) model (log: \(child.logFile)) …\n")
        let deadline = ContinuousClock.now + startTimeout
        while ContinuousClock.now < deadline {
            guard child.isRunning else { throw child.exitedAtStartUp() }
            // The connection probe answers within a millisecond either way, so a short poll costs nothing.
            if await services.ml.listens(), await services.ml.health() != nil {
                timeline.mark(.mlListening)
                return child
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        child.stop()
        throw ValidationError("the ML service did not start listening within 120 s; see \(child.logFile)")
    }

    /// Returns once the child's workers have loaded their models; throws the reason when loading failed or the child
    /// exited meanwhile.
    func modelsLoaded(ml: MLClient) async throws {
        let deadline = ContinuousClock.now + Self.startTimeout
        while ContinuousClock.now < deadline {
            guard isRunning else { throw exitedAtStartUp() }
            let health = await ml.health()
            if case .bool(true)? = health?["models_loaded"] { return }
            if case .string(let error)? = health?["load_error"] {
                throw ValidationError("the ML service could not load its models: \(error) (log: \(logFile))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationError("the ML service did not load its models within 120 s; see \(logFile)")
    }

    /// The child is gone before it was ready: its last log line says why (a missing package or weight file names the
    /// command that installs it).
    private func exitedAtStartUp() -> ValidationError {
        let reason = (try? String(contentsOfFile: logFile, encoding: .utf8))?
            .split(whereSeparator: \.isNewline).last.map { ": \($0)" } ?? ""
        return ValidationError("the ML service exited at start-up\(reason) (log: \(logFile))")
    }

    /// `allowedRoot`: the only folder the child may read, unless `PHOTO_SORTER_ALLOWED_ROOTS` says otherwise;
    /// nil leaves the child's default.
    init(python: String, model: FaceModel, mlURL: URL, serviceURL: String, allowedRoot: String?, sharedSecret: String?,
         logFile: String) throws {
        self.logFile = logFile
        self.model = model
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "photo_sorter_ml"]
        process.currentDirectoryURL = URL(fileURLWithPath: python).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()  // ml-service/
        var env = ProcessInfo.processInfo.environment
        env["PHOTO_SORTER_ML_HOST"] = mlURL.host ?? "127.0.0.1"
        env["PHOTO_SORTER_ML_PORT"] = String(mlURL.port ?? 8001)
        env["PHOTO_SORTER_SERVICE_URL"] = serviceURL
        env["PHOTO_SORTER_ML_MODEL"] = model.name
        if let allowedRoot { env["PHOTO_SORTER_ALLOWED_ROOTS"] = env["PHOTO_SORTER_ALLOWED_ROOTS"] ?? allowedRoot }
        if let sharedSecret { env["PHOTO_SORTER_SHARED_SECRET"] = sharedSecret }
        // The child exits when this process is gone, even after a kill -9 that runs no clean-up (no orphans).
        env["PHOTO_SORTER_ML_PARENT_PID"] = String(getpid())
        process.environment = env
        // Started before the service opens the database, the child may be the first to need its folder.
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: logFile).deletingLastPathComponent(),
                                                withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    private let signalled = NSLock()
    private var stopSent = false

    /// Sends `signal`, unless a stop signal was sent before.
    private func send(_ signal: Int32) {
        let first = signalled.withLock {
            defer { stopSent = true }
            return !stopSent
        }
        if first && process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Every result is back: SIGUSR1 makes the child stop its workers and exit at once, without its HTTP layer's
    /// graceful shutdown (0.1 s of waiting for connections), while this process goes on; `stop` waits for the exit.
    func release() {
        send(SIGUSR1)
    }

    /// SIGTERM (a graceful shutdown; nothing when `release` already asked it to stop), then SIGKILL if it has not
    /// exited within five seconds.
    func stop() {
        guard process.isRunning else { return }
        send(SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
