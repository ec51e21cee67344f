import Logging

/// Runs `body` every `intervalSeconds` until cancelled; an error is logged and the next round runs anyway.
func runPeriodically(every intervalSeconds: Double, name: String, logger: Logger, _ body: @Sendable () async throws -> Void) async {
    while !Task.isCancelled {
        do {
            try await body()
        } catch {
            logger.error("\(name) round failed", metadata: ["error": "\(error)"])
        }
        try? await Task.sleep(for: .milliseconds(Int64(intervalSeconds * 1000)))
    }
}
