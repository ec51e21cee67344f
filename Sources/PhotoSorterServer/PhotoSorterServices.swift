import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Vapor

/// Everything the service is made of, built once in `configure` (the composition root) and reached from
/// handlers through `req.photoSorter`.
public final class PhotoSorterServices: Sendable {
    public let config: ServiceConfig
    public let database: PhotoSorterDatabase
    public let queue: any WorkQueue
    /// The queue when it is Kafka's (`PHOTO_SORTER_QUEUE=kafka`): started and stopped with the background work.
    public let kafka: KafkaWorkQueue?
    public let identity: IdentityService
    public let ingest: IngestService
    public let dispatcher: PhotoDispatcher
    public let ml: MLClient
    public let reprocess: ReprocessService
    public let people: PeopleService
    public let xmpNames: XMPNameImport
    public let recluster: ReclusterService
    public let media: MediaService
    /// Watch mode: follows `config.watchRoots` (and roots `sort --watch` adds); idle while it follows none.
    public let watcher: LibraryWatcher
    public let missingPhotos: MissingPhotos
    /// `xmp write`: names of faces into the photos' XMP sidecars.
    public let xmp: XMPWriteService
    let statuses: PhotosTable
    let reads: ReadQueries
    let retryScheduler: RetryScheduler
    let staleScheduler: StaleProcessingScheduler
    private let logger: Logger
    /// The dispatcher and the schedulers, and the task running them, while they run.
    private let background = NIOLockedValueBox<(ServiceGroup, Task<Void, Never>)?>(nil)

    init(config: ServiceConfig, database: PhotoSorterDatabase, httpClient: HTTPClient, logger: Logger) throws {
        self.config = config
        self.database = database
        self.logger = logger
        let kafka = config.usesKafka ? try KafkaWorkQueue(settings: .init(config: config), database: database, logger: logger) : nil
        self.kafka = kafka
        let queue: any WorkQueue = kafka ?? DatabaseWorkQueue(database: database)
        self.queue = queue
        let statuses = PhotosTable(database: database, config: config)
        self.statuses = statuses
        self.reads = ReadQueries(database: database, maxRetries: config.maxRetries)
        let identity = IdentityService(database: database, config: config, logger: logger)
        self.identity = identity
        let ml = MLClient(http: httpClient, baseURLs: config.mlServiceURLs, sharedSecret: config.sharedSecret,
                          timeoutSeconds: config.mlRequestTimeoutSeconds)
        self.ml = ml
        let twins = ContentTwins(database: database, onFacesChanged: { try await identity.catchUpNow() }, logger: logger)
        let dispatcher = PhotoDispatcher(queue: queue, ml: ml, statuses: statuses, twins: twins,
                                         callbackURL: config.callbackBaseURL + "/callback/photo-processed",
                                         concurrency: config.workerConcurrency, logger: logger)
        self.dispatcher = dispatcher
        self.ingest = IngestService(database: database, queue: queue, config: config, logger: logger,
                                    onWorkQueued: { dispatcher.poke() },
                                    onFacesChanged: { try await identity.catchUpNow() },
                                    dateBackfill: TakenDateBackfill(database: database, ml: ml, logger: logger))
        self.reprocess = ReprocessService(database: database, identity: identity, ml: ml, config: config,
                                          logger: logger, onWorkQueued: { Self.workQueued(dispatcher: dispatcher, kafka: kafka) })
        self.people = PeopleService(database: database, identity: identity, reads: reads, config: config)
        self.xmpNames = XMPNameImport(database: database, people: people, identity: identity, logger: logger)
        self.recluster = ReclusterService(database: database, identity: identity, config: config, logger: logger)
        self.media = MediaService(database: database, ml: ml, logger: logger)
        self.watcher = LibraryWatcher(roots: config.watchRoots, ingest: ingest, database: database,
                                      settleSeconds: config.watchSettleSeconds, reconcileSeconds: config.watchReconcileSeconds, logger: logger)
        self.missingPhotos = MissingPhotos(database: database, logger: logger)
        self.xmp = XMPWriteService(database: database, logger: logger)
        self.retryScheduler = RetryScheduler(database: database, queue: queue, maxRetries: config.maxRetries, logger: logger)
        self.staleScheduler = StaleProcessingScheduler(
            database: database, statuses: statuses, timeoutSeconds: config.processingTimeoutSeconds,
            mlStartedAtMs: { await ml.earliestStartMs() },
            handOverGraceMs: 5_000 * Int64(config.mlServiceURLs.count), logger: logger)
    }

    /// Photos were set READY outside an ingest or retry (a reprocess, PUT /photo/update-status): wakes the workers,
    /// and the Kafka queue publishes them.
    func workQueued() { Self.workQueued(dispatcher: dispatcher, kafka: kafka) }

    private static func workQueued(dispatcher: PhotoDispatcher, kafka: KafkaWorkQueue?) {
        dispatcher.poke()
        if let kafka { Task { await kafka.publishNewlyReady() } }
    }

    /// Creates the Kafka topic if needed and joins the consumer group (once; nothing with the database queue).
    /// `configure` calls it before the server starts: joining a group takes seconds on some brokers, time that then
    /// overlaps starting the ML service.
    func startKafkaConsumer() async throws {
        guard let kafka else { return }
        let dispatcher = self.dispatcher
        try await kafka.start(onMessages: { dispatcher.poke() })
    }

    /// Starts workers, schedulers and interrupted ingest jobs.
    func startBackgroundWork() async throws {
        if database.flavor == .sqlite {
            // SQLite is single-instance: PROCESSING rows at start-up were orphaned by a crash or Ctrl-C.
            let released = try await PhotosTable.releaseAllProcessing(on: database.sql)
            if released > 0 { logger.info("orphaned PROCESSING photos returned to the queue", metadata: ["count": "\(released)"]) }
            // Likewise a RUNNING re-cluster job was cut off (on PostgreSQL it may be another instance's, still running).
            try await recluster.failInterruptedJobs()
        }
        try await ingest.resumeInterruptedJobs()
        let interval = config.schedulerIntervalSeconds, logger = self.logger
        var services: [BackgroundService] = [
            BackgroundService("dispatcher") { await self.dispatcher.run() },
            .periodic("retry scheduler", every: interval, logger: logger) {
                if try await !self.retryScheduler.runOnce().isEmpty { self.dispatcher.poke() }
            },
            .periodic("stale processing scheduler", every: interval, logger: logger) {
                for id in try await self.staleScheduler.runOnce() { self.dispatcher.finished(id) }
            },
            .periodic("reprocess finisher", every: interval, logger: logger) { try await self.reprocess.finishIfComplete() },
            // Names left pending by a crash, or recorded by another instance's callbacks.
            .periodic("names from XMP", every: interval, logger: logger) { await self.xmpNames.drain() },
            .periodic("identity snapshot", every: IdentityService.snapshotCheckSeconds, logger: logger) {
                try await self.identity.saveSnapshotIfBehind()
            },
        ]
        // Watch mode: last in the group, so the first to stop.
        services.append(BackgroundService("library watcher") { await self.watcher.run() })
        if let kafka {
            // First in the group, so shut down last (a group stops its services in reverse order): the consumer leaves
            // its group and the producer flushes after the dispatcher stopped taking messages.
            let dispatcher = self.dispatcher
            services.insert(BackgroundService("kafka consumer") {
                // Joined already by `configure` (joining takes seconds on some brokers); a no-op then.
                do { try await kafka.start(onMessages: { dispatcher.poke() }) } catch {
                    logger.error("Kafka consumer did not start", metadata: ["error": "\(error)"])
                }
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                await kafka.shutdown()
            }, at: 0)
        }
        // Signals stay Vapor's: the group is shut down by `stopBackgroundWork`, which the application's shutdown calls.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }, logger: logger))
        let running = Task {
            do { try await group.run() } catch { logger.error("background work stopped", metadata: ["error": "\(error)"]) }
        }
        background.withLockedValue { $0 = (group, running) }
    }

    /// Stops ingest scans, workers and schedulers (idempotent); in-flight results still arrive until shutdown.
    /// The Kafka queue then flushes its producer and leaves the consumer group.
    public func stopBackgroundWork() async {
        watcher.stopScanning()  // starts no scan once the ingest scans are stopped
        await ingest.shutdown()
        if let (group, running) = background.withLockedValue({ current in defer { current = nil }; return current }) {
            await group.triggerGracefulShutdown()
            await running.value
        }
        await recluster.waitForBackgroundJob()
        await xmp.waitForBackgroundJob()
        await kafka?.shutdown()  // the group's consumer service did it, unless the group never ran (idempotent)
    }
}

private struct PhotoSorterServicesKey: StorageKey {
    typealias Value = PhotoSorterServices
}

extension Application {
    /// The services, or nil when `configure` has not completed (for clean-up after a failed start).
    public var photoSorterIfConfigured: PhotoSorterServices? { storage[PhotoSorterServicesKey.self] }

    public var photoSorter: PhotoSorterServices {
        get {
            guard let services = storage[PhotoSorterServicesKey.self] else { fatalError("configure(_:config:) has not run") }
            return services
        }
        set { storage[PhotoSorterServicesKey.self] = newValue }
    }
}

extension Request {
    var photoSorter: PhotoSorterServices { application.photoSorter }

    /// Enforces the shared secret when one is configured. A user who presented the API token (the web page,
    /// a script) may write too: the secret is for machines, the token for people, and the page cannot hold the secret.
    func requireSecret() throws {
        guard let secret = photoSorter.config.sharedSecret else { return }
        if storage[AccessTokenMiddleware.PresentedToken.self] == true { return }
        guard let given = headers.first(name: "X-Photo-Sorter-Secret"), AccessTokenMiddleware.same(given, secret) else {
            throw PhotoSorterError.unauthorized
        }
    }
}
