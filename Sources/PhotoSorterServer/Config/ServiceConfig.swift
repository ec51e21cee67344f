import Foundation
import PhotoSorterCore

/// All configuration in one place: defaults, then an optional JSON file (`PHOTO_SORTER_CONFIG`), then
/// `PHOTO_SORTER_*` environment variables. Command-line flags override the result in the CLI.
public struct ServiceConfig: Codable, Sendable, Equatable {
    /// SQLite file path, `sqlite:///abs/path`, or `postgres://user:pass@host:port/db`.
    public var databaseURL = "./data/photo-sorter.sqlite"
    public var host = "127.0.0.1"
    public var port = 8080
    /// Base URL the ML service calls back; defaults to `http://host:port`.
    public var publicURL: String?
    /// ML service base URLs; workers spread photos over them round-robin.
    public var mlServiceURLs = ["http://127.0.0.1:8001"]
    /// Required in `X-Photo-Sorter-Secret` on the callback, person dump and embedding reads when set.
    public var sharedSecret: String?
    /// Needed by every page and API call when set (`Authorization: Bearer`, `X-Photo-Sorter-Token`, or the cookie
    /// that `/?token=` sets). Required when `host` is not a loopback address.
    public var apiToken: String?
    /// Folders that may be ingested; empty means any folder.
    public var allowedRoots: [String] = []
    public var batchSize = 50
    /// Photos in flight at the ML service at once (per instance).
    public var workerConcurrency = 8
    /// Face model the ML service should run (`arcface` or `dlib`); nil: the model the database already
    /// holds, else `FaceModel.default`. `sort` starts its ML child with it; `reprocess` switches to it.
    public var model: String?
    /// Identity thresholds; nil takes the tuned value of the database's model (`FaceModel.policy`).
    public var matchThreshold: Float?
    /// See `IdentityPolicy`: extra similarity required to join a person with few faces (÷ √faces).
    public var smallPersonMargin: Float?
    public var mirrorThreshold: Float?
    /// Attempts after the first before a photo stays FAILED.
    public var maxRetries = 3
    /// Backoff before retry n is `retryBackoffSeconds * 2^(n-1)`.
    public var retryBackoffSeconds = 10.0
    public var schedulerIntervalSeconds = 5.0
    /// PROCESSING for longer than this is considered lost and marked FAILED.
    public var processingTimeoutSeconds = 600.0
    public var mlRequestTimeoutSeconds = 30.0
    /// Ingest pauses while more than this many photos wait in the queue (backpressure).
    public var queueHighWatermark = 5000
    /// The work queue: `database` (READY rows are the queue; the default) or `kafka` (see `KafkaWorkQueue`).
    public var queue = "database"
    /// Kafka bootstrap brokers (`host:port`); required with `queue = kafka`.
    public var kafkaBrokers: [String] = []
    public var kafkaTopic = "photos-to-process"
    /// Partitions of the topic when the service creates it (an existing topic keeps its own).
    public var kafkaPartitions = 8
    public var kafkaGroup = "photo-sorter-workers"
    /// A message the broker has not acknowledged within this time fails its batch (republished later).
    public var kafkaMessageTimeoutSeconds = 30.0
    /// A READY photo without a message from this instance is published again after waiting this long.
    public var kafkaRepublishAfterSeconds = 60.0
    /// Folders the service follows (watch mode: `serve --watch`, `PHOTO_SORTER_WATCH_ROOTS`, colon-separated): inotify
    /// events keep the library in step with them within seconds.
    public var watchRoots: [String] = []
    /// Watch mode takes a file once its size and modification time have been stable this long (a copy in progress is
    /// never taken half-written).
    public var watchSettleSeconds = 2.0
    /// Watch mode scans each whole root again this often: the safety net for events inotify could not deliver.
    public var watchReconcileSeconds = 3600.0

    public static let queueKinds = ["database", "kafka"]

    public init() {}

    public var usesKafka: Bool { queue == "kafka" }

    public var callbackBaseURL: String { publicURL ?? "http://\(host):\(port)" }

    /// Whether the service listens only on this machine (127.0.0.0/8, ::1, localhost).
    public var bindsLoopbackOnly: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Where a browser on this machine opens the web page.
    public var browseURL: String {
        let shown = bindsLoopbackOnly ? host : "127.0.0.1"
        return "http://\(shown.contains(":") ? "[\(shown)]" : shown):\(port)/"
    }

    /// The model named by `model`, if any (validated by `validate()`).
    public var requestedModel: FaceModel? { model.flatMap(FaceModel.named) }

    /// `model`'s tuned identity thresholds with the configured overrides applied.
    public func identityPolicy(for model: FaceModel) -> IdentityPolicy {
        var policy = model.policy
        if let matchThreshold { policy.matchThreshold = matchThreshold }
        if let smallPersonMargin { policy.smallPersonMargin = smallPersonMargin }
        if let mirrorThreshold { policy.mirrorThreshold = mirrorThreshold }
        return policy
    }

    /// Defaults ← JSON file named by `PHOTO_SORTER_CONFIG` ← environment.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ServiceConfig {
        var config = ServiceConfig()
        if let file = environment["PHOTO_SORTER_CONFIG"] {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw ConfigError(message: "cannot read config file \(file): \(error.localizedDescription)")
            }
            do { config = try JSONDecoder().decode(PartialConfig.self, from: data).applied(to: config) } catch {
                throw ConfigError(message: "config file \(file) is not valid: \(error)")
            }
        }
        try config.applyEnvironment(environment)
        return config
    }

    mutating func applyEnvironment(_ env: [String: String]) throws {
        func value<T: LosslessStringConvertible>(_ name: String, _ type: T.Type) throws -> T? {
            guard let raw = env["PHOTO_SORTER_" + name], !raw.isEmpty else { return nil }
            guard let parsed = T(raw) else { throw ConfigError(message: "PHOTO_SORTER_\(name)=\(raw) is not a valid \(T.self)") }
            return parsed
        }
        func list(_ name: String, separator: Character) -> [String]? {
            env["PHOTO_SORTER_" + name].map { $0.split(separator: separator).map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        if let v = try value("DATABASE_URL", String.self) { databaseURL = v }
        if let v = try value("HOST", String.self) { host = v }
        if let v = try value("PORT", Int.self) { port = v }
        if let v = try value("PUBLIC_URL", String.self) { publicURL = v }
        if let v = list("ML_URL", separator: ","), !v.isEmpty { mlServiceURLs = v }
        if let v = try value("SHARED_SECRET", String.self) { sharedSecret = v }
        if let v = try value("API_TOKEN", String.self) { apiToken = v }
        if let v = list("ALLOWED_ROOTS", separator: ":") { allowedRoots = v }
        if let v = try value("BATCH_SIZE", Int.self) { batchSize = v }
        if let v = try value("WORKERS", Int.self) { workerConcurrency = v }
        if let v = try value("ML_MODEL", String.self) { model = v }
        if let v = try value("MATCH_THRESHOLD", Float.self) { matchThreshold = v }
        if let v = try value("SMALL_PERSON_MARGIN", Float.self) { smallPersonMargin = v }
        if let v = try value("MIRROR_THRESHOLD", Float.self) { mirrorThreshold = v }
        if let v = try value("MAX_RETRIES", Int.self) { maxRetries = v }
        if let v = try value("RETRY_BACKOFF_SECONDS", Double.self) { retryBackoffSeconds = v }
        if let v = try value("SCHEDULER_INTERVAL_SECONDS", Double.self) { schedulerIntervalSeconds = v }
        if let v = try value("PROCESSING_TIMEOUT_SECONDS", Double.self) { processingTimeoutSeconds = v }
        if let v = try value("ML_TIMEOUT_SECONDS", Double.self) { mlRequestTimeoutSeconds = v }
        if let v = try value("QUEUE_HIGH_WATERMARK", Int.self) { queueHighWatermark = v }
        if let v = try value("QUEUE", String.self) { queue = v.lowercased() }
        if let v = list("KAFKA_BROKERS", separator: ","), !v.isEmpty { kafkaBrokers = v }
        if let v = try value("KAFKA_TOPIC", String.self) { kafkaTopic = v }
        if let v = try value("KAFKA_PARTITIONS", Int.self) { kafkaPartitions = v }
        if let v = try value("KAFKA_GROUP", String.self) { kafkaGroup = v }
        if let v = try value("KAFKA_MESSAGE_TIMEOUT_SECONDS", Double.self) { kafkaMessageTimeoutSeconds = v }
        if let v = try value("KAFKA_REPUBLISH_AFTER_SECONDS", Double.self) { kafkaRepublishAfterSeconds = v }
        if let v = list("WATCH_ROOTS", separator: ":") { watchRoots = v }
        if let v = try value("WATCH_SETTLE_SECONDS", Double.self) { watchSettleSeconds = v }
        if let v = try value("WATCH_RECONCILE_SECONDS", Double.self) { watchReconcileSeconds = v }
        try validate()
    }

    /// Rejects values that would make the service misbehave rather than fail loudly.
    public func validate() throws {
        guard (1...65535).contains(port) else { throw ConfigError(message: "port \(port) is out of range") }
        guard (1...10_000).contains(batchSize) else { throw ConfigError(message: "batchSize must be 1...10000, got \(batchSize)") }
        guard workerConcurrency >= 1 else { throw ConfigError(message: "workerConcurrency must be at least 1") }
        if let model, FaceModel.named(model) == nil {
            throw ConfigError(message: "unknown face model \"\(model)\"; choose one of \(FaceModel.all.map(\.name).joined(separator: ", "))")
        }
        for (name, value) in [("matchThreshold", matchThreshold), ("mirrorThreshold", mirrorThreshold)] {
            if let value, !(-1...1).contains(value) { throw ConfigError(message: "\(name) must be a cosine similarity in -1...1") }
        }
        if !bindsLoopbackOnly, apiToken == nil {
            throw ConfigError(message: "host \(host) is reachable from other machines: set PHOTO_SORTER_API_TOKEN so every page and API call needs it")
        }
        // The ML services and other instances authenticate with the shared secret (callbacks, the person dump,
        // corrections); reachable from other machines, it must be set, and long enough not to be guessed.
        if !bindsLoopbackOnly, (sharedSecret ?? "").count < 16 {
            throw ConfigError(message: "host \(host) is reachable from other machines: set PHOTO_SORTER_SHARED_SECRET (at least 16 characters) on every instance and ML service")
        }
        if let apiToken, apiToken.count < 16 {
            throw ConfigError(message: "PHOTO_SORTER_API_TOKEN must be at least 16 characters")
        }
        guard !mlServiceURLs.isEmpty else { throw ConfigError(message: "at least one ML service URL is needed") }
        guard maxRetries >= 0, retryBackoffSeconds >= 0, processingTimeoutSeconds > 0, schedulerIntervalSeconds > 0 else {
            throw ConfigError(message: "retry and timeout settings must not be negative")
        }
        guard watchSettleSeconds > 0, watchReconcileSeconds > 0 else {
            throw ConfigError(message: "PHOTO_SORTER_WATCH_SETTLE_SECONDS and PHOTO_SORTER_WATCH_RECONCILE_SECONDS must be positive")
        }
        try validateQueue()
    }

    private func validateQueue() throws {
        guard Self.queueKinds.contains(queue) else {
            throw ConfigError(message: "PHOTO_SORTER_QUEUE=\(queue) is not a work queue; choose one of \(Self.queueKinds.joined(separator: ", "))")
        }
        guard usesKafka else { return }
        guard !kafkaBrokers.isEmpty else {
            throw ConfigError(message: "PHOTO_SORTER_QUEUE=kafka needs PHOTO_SORTER_KAFKA_BROKERS=host:port[,host:port...]")
        }
        for broker in kafkaBrokers {
            let parts = broker.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2, !parts.dropLast().joined(separator: ":").isEmpty, let port = Int(parts.last!), (1...65535).contains(port) else {
                throw ConfigError(message: "PHOTO_SORTER_KAFKA_BROKERS: \"\(broker)\" is not host:port")
            }
        }
        let topicCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !kafkaTopic.isEmpty, kafkaTopic.count <= 249, kafkaTopic != ".", kafkaTopic != "..",
              kafkaTopic.unicodeScalars.allSatisfy(topicCharacters.contains) else {
            throw ConfigError(message: "PHOTO_SORTER_KAFKA_TOPIC=\(kafkaTopic) is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
        }
        guard (1...10_000).contains(kafkaPartitions) else {
            throw ConfigError(message: "PHOTO_SORTER_KAFKA_PARTITIONS must be 1...10000, got \(kafkaPartitions)")
        }
        guard !kafkaGroup.isEmpty else { throw ConfigError(message: "PHOTO_SORTER_KAFKA_GROUP must not be empty") }
        guard kafkaMessageTimeoutSeconds >= 1, kafkaRepublishAfterSeconds > 0 else {
            throw ConfigError(message: "PHOTO_SORTER_KAFKA_MESSAGE_TIMEOUT_SECONDS must be at least 1 and PHOTO_SORTER_KAFKA_REPUBLISH_AFTER_SECONDS positive")
        }
    }
}

/// The configuration file: every key optional, same names as `ServiceConfig`.
private struct PartialConfig: Decodable {
    var databaseURL: String?, host: String?, port: Int?, publicURL: String?, mlServiceURLs: [String]?
    var sharedSecret: String?, apiToken: String?, allowedRoots: [String]?, batchSize: Int?, workerConcurrency: Int?
    var model: String?, matchThreshold: Float?, smallPersonMargin: Float?, mirrorThreshold: Float?, maxRetries: Int?, retryBackoffSeconds: Double?
    var schedulerIntervalSeconds: Double?, processingTimeoutSeconds: Double?, mlRequestTimeoutSeconds: Double?
    var queueHighWatermark: Int?
    var queue: String?, kafkaBrokers: [String]?, kafkaTopic: String?, kafkaPartitions: Int?, kafkaGroup: String?
    var kafkaMessageTimeoutSeconds: Double?, kafkaRepublishAfterSeconds: Double?
    var watchRoots: [String]?, watchSettleSeconds: Double?, watchReconcileSeconds: Double?

    func applied(to base: ServiceConfig) -> ServiceConfig {
        var c = base
        databaseURL.map { c.databaseURL = $0 }; host.map { c.host = $0 }; port.map { c.port = $0 }
        publicURL.map { c.publicURL = $0 }; mlServiceURLs.map { c.mlServiceURLs = $0 }
        sharedSecret.map { c.sharedSecret = $0 }; apiToken.map { c.apiToken = $0 }; allowedRoots.map { c.allowedRoots = $0 }
        batchSize.map { c.batchSize = $0 }; workerConcurrency.map { c.workerConcurrency = $0 }
        model.map { c.model = $0 }; matchThreshold.map { c.matchThreshold = $0 }; smallPersonMargin.map { c.smallPersonMargin = $0 }
        mirrorThreshold.map { c.mirrorThreshold = $0 }
        maxRetries.map { c.maxRetries = $0 }; retryBackoffSeconds.map { c.retryBackoffSeconds = $0 }
        schedulerIntervalSeconds.map { c.schedulerIntervalSeconds = $0 }
        processingTimeoutSeconds.map { c.processingTimeoutSeconds = $0 }
        mlRequestTimeoutSeconds.map { c.mlRequestTimeoutSeconds = $0 }; queueHighWatermark.map { c.queueHighWatermark = $0 }
        queue.map { c.queue = $0.lowercased() }; kafkaBrokers.map { c.kafkaBrokers = $0 }; kafkaTopic.map { c.kafkaTopic = $0 }
        kafkaPartitions.map { c.kafkaPartitions = $0 }; kafkaGroup.map { c.kafkaGroup = $0 }
        kafkaMessageTimeoutSeconds.map { c.kafkaMessageTimeoutSeconds = $0 }; kafkaRepublishAfterSeconds.map { c.kafkaRepublishAfterSeconds = $0 }
        watchRoots.map { c.watchRoots = $0 }; watchSettleSeconds.map { c.watchSettleSeconds = $0 }
        watchReconcileSeconds.map { c.watchReconcileSeconds = $0 }
        return c
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "configuration error: \(message)" }
}
