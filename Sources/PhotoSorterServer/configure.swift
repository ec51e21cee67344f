import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Metrics
import NIOConcurrencyHelpers
import Prometheus
import Vapor

/// Prometheus registry behind swift-metrics; bootstrapped once per process.
let metricsRegistry: PrometheusCollectorRegistry = {
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    return registry
}()

/// The composition root: database, migrations, services, routes and background work.
/// `backgroundWork: false` leaves workers and schedulers stopped (tests drive them by hand).
public func configure(_ app: Application, config: ServiceConfig, backgroundWork: Bool = true) async throws {
    _ = metricsRegistry
    app.http.server.configuration.hostname = config.host
    app.http.server.configuration.port = config.port
    app.http.server.configuration.responseCompression = .enabled
    app.routes.defaultMaxBodySize = "16mb"

    let (flavor, location) = DatabaseFlavor.parse(config.databaseURL)
    switch flavor {
    case .sqlite:
        let directory = URL(fileURLWithPath: location).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        app.databases.use(.sqlite(.file(location)), as: .sqlite)
    case .postgres:
        // Two connections per event loop: a request waits for a connection of its own loop, and with one, a long
        // transaction (a re-cluster's result) held every request on that loop until the pool's timeout (500s).
        app.databases.use(try .postgres(url: location, maxConnectionsPerEventLoop: 2), as: .psql)
    }
    let database = try PhotoSorterDatabase(flavor: flavor, databases: app.databases, eventLoopGroup: app.eventLoopGroup, logger: app.logger)
    if flavor == .sqlite {
        // WAL lets readers (status polls, API reads) proceed while a batch or callback commits.
        try await database.sql.raw("PRAGMA journal_mode = WAL").run()
        try await database.limitSQLiteLockWait()
    }
    app.migrations.add(schemaMigrations)
    try await migrate(app, flavor: flavor)

    // ML services run on this machine or the local network: a connection that takes seconds is a service that is
    // down, and a short connect timeout lets the pool send the photo to another one (AsyncHTTPClient keeps
    // retrying a refused connection until this timeout).
    app.http.client.configuration.timeout.connect = .seconds(2)
    let services = try PhotoSorterServices(config: config, database: database, httpClient: app.http.client.shared, logger: app.logger)

    try await services.identity.load()
    app.photoSorter = services
    app.middleware.use(InternalErrorMiddleware())
    if let token = config.apiToken {
        app.middleware.use(AccessTokenMiddleware(token: token, sharedSecret: config.sharedSecret))
    }
    app.middleware.use(MethodNotAllowedMiddleware())
    app.middleware.use(CrossSiteWriteGuard())
    try routes(app, webAssets: try WebAssets.load())
    if backgroundWork {
        try await services.startKafkaConsumer()
        app.lifecycle.use(BackgroundWorkLifecycle(services: services))
    }
}

/// Creates or upgrades the schema. Several instances starting at once on one PostgreSQL database race to create the
/// same tables (Fluent's migrations take no lock): the loser's statement fails, so it waits and tries again, and
/// then finds the migrations the winner recorded. Gives up after about a minute with the last error.
private func migrate(_ app: Application, flavor: DatabaseFlavor) async throws {
    var attempt = 0
    while true {
        do {
            try await app.autoMigrate()
            return
        } catch where flavor == .postgres && attempt < 20 {
            attempt += 1
            app.logger.notice("schema migration collided with another instance; retrying", metadata: [
                "attempt": "\(attempt)", "error": "\(String(reflecting: error))"])
            try await Task.sleep(for: .milliseconds(500 * min(attempt, 6)))
        }
    }
}

/// Starts the workers once the server is up and stops them before it shuts down.
struct BackgroundWorkLifecycle: LifecycleHandler {
    let services: PhotoSorterServices

    func didBootAsync(_ application: Application) async throws {
        try await services.startBackgroundWork()
    }

    func shutdownAsync(_ application: Application) async {
        await services.stopBackgroundWork()
    }
}
