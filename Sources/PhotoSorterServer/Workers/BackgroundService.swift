import Logging
import ServiceLifecycle

/// One piece of the service's background work (the dispatcher, a scheduler) as a `Service` of the
/// `ServiceGroup` that `PhotoSorterServices` runs: its body runs until the group shuts down gracefully, which
/// cancels it (the bodies end when their task is cancelled).
struct BackgroundService: Service, CustomStringConvertible {
    let description: String
    private let body: @Sendable () async -> Void

    init(_ name: String, body: @escaping @Sendable () async -> Void) {
        self.description = name
        self.body = body
    }

    /// Runs `round` every `intervalSeconds`; a failed round is logged and the next one runs anyway.
    static func periodic(_ name: String, every intervalSeconds: Double, logger: Logger,
                         round: @escaping @Sendable () async throws -> Void) -> BackgroundService {
        BackgroundService(name) {
            while !Task.isCancelled {
                do {
                    try await round()
                } catch {
                    logger.error("\(name) round failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(Int64(intervalSeconds * 1000)))
            }
        }
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown { await body() }
    }
}
