import ArgumentParser
import Foundation
import PhotoSorterServer
import Vapor

/// The service in process for commands that read or correct the library (`people`, `recluster`, `migrate`):
/// the database with its migrations and the services on it, without workers, schedulers or the ML service.
enum InProcessService {
    /// Opens the database, runs `body` and always closes it again. A refused request (`PhotoSorterError`) is
    /// printed to standard error as the HTTP API answers it, with its status, and the command exits with code 2.
    static func run<Result>(_ options: ConfigOptions, _ body: (PhotoSorterServices) async throws -> Result) async throws -> Result {
        let config = try options.load()
        let app = try await Application.makeForCommandLine(arguments: ["photo-sorter"])
        let result: Result
        do {
            try await configure(app, config: config, backgroundWork: false)
            result = try await body(app.photoSorter)
        } catch {
            try? await app.asyncShutdown()
            if let refusal = error as? PhotoSorterError {
                writeToStandardError(try jsonText(Refusal(reason: refusal.reason, status: refusal.status.code), pretty: false) + "\n")
                throw ExitCode(2)
            }
            throw error
        }
        try await app.asyncShutdown()
        return result
    }

    /// `run`, then prints what `body` answered as JSON on standard output: the HTTP API's shape, pretty-printed
    /// with sorted keys.
    static func printJSON(_ options: ConfigOptions, _ body: (PhotoSorterServices) async throws -> some Encodable) async throws {
        print(try jsonText(try await run(options, body), pretty: true))
    }

    static func jsonText(_ value: some Encodable, pretty: Bool) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// A refused request as the CLI reports it: the HTTP API's error body plus the status it would answer with.
private struct Refusal: Encodable {
    let error = true
    let reason: String
    let status: UInt
}

extension Application {
    /// An application for a command: production settings, log level from `LOG_LEVEL` (default warning).
    static func makeForCommandLine(arguments: [String]) async throws -> Application {
        let app = try await Application.make(Environment(name: "production", arguments: arguments))
        app.logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        return app
    }
}
