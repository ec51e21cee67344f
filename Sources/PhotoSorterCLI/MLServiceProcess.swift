import Foundation
import PhotoSorterServer

/// The Python ML service as a child process, started by `sort` when nothing answers at the ML URL.
final class MLServiceProcess {
    private let process = Process()

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

    init(python: String, mlURL: URL, serviceURL: String, allowedRoot: String, sharedSecret: String?, logFile: String) throws {
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "photo_sorter_ml"]
        process.currentDirectoryURL = URL(fileURLWithPath: python).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()  // ml-service/
        var env = ProcessInfo.processInfo.environment
        env["PHOTO_SORTER_ML_HOST"] = mlURL.host ?? "127.0.0.1"
        env["PHOTO_SORTER_ML_PORT"] = String(mlURL.port ?? 8001)
        env["PHOTO_SORTER_SERVICE_URL"] = serviceURL
        env["PHOTO_SORTER_ALLOWED_ROOTS"] = env["PHOTO_SORTER_ALLOWED_ROOTS"] ?? allowedRoot
        if let sharedSecret { env["PHOTO_SORTER_SHARED_SECRET"] = sharedSecret }
        process.environment = env
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM, then SIGKILL if it has not exited within five seconds.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
