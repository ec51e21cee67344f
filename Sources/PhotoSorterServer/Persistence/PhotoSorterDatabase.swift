import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import NIOCore
import SQLKit

/// The SQL dialects photo-sorter runs on. Queries that differ (row locking, advisory locks) switch on it.
public enum DatabaseFlavor: String, Sendable {
    case sqlite, postgres

    /// Parses the configured database URL: a file path, `sqlite://PATH`, or `postgres(ql)://…`.
    public static func parse(_ url: String) -> (flavor: DatabaseFlavor, location: String) {
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") { return (.postgres, url) }
        if url.hasPrefix("sqlite://") { return (.sqlite, String(url.dropFirst("sqlite://".count))) }
        return (.sqlite, url)
    }
}

/// Access to the database for the service's adapters: plain queries, and transactions.
///
/// SQLite allows one writer, and a transaction that reads before it writes fails with SQLITE_BUSY (rather
/// than waiting) when another connection wrote in between. On SQLite every query therefore goes through
/// the single connection of one event loop: the pool hands it out one statement or one transaction at a
/// time, which serialises writers without lock errors. PostgreSQL uses the whole pool and row locks.
public struct PhotoSorterDatabase: Sendable {
    public let flavor: DatabaseFlavor
    /// One handle per event loop (only the first on SQLite), made once so use after shutdown fails with an
    /// error instead of a missing database.
    private let handles: [any Database]

    init(flavor: DatabaseFlavor, databases: Databases, eventLoopGroup: any EventLoopGroup, logger: Logger) throws {
        self.flavor = flavor
        let loops = flavor == .sqlite ? [eventLoopGroup.next()] : Array(eventLoopGroup.makeIterator())
        handles = try loops.map { loop in
            guard let database = databases.database(logger: logger, on: loop) else {
                throw ConfigError(message: "no database configured")
            }
            return database
        }
    }

    public var fluent: any Database { handles.randomElement()! }
    public var sql: any SQLDatabase { fluent as! any SQLDatabase }

    /// Runs `body` in one transaction; everything or nothing is written. Inside, use only the given
    /// database: on SQLite the outer one waits for the connection the transaction holds.
    ///
    /// On PostgreSQL the transaction is driven here rather than by Fluent, because PostgresNIO (1.33) never answers a
    /// statement written to a connection the server is closing: when a backend is terminated mid-transaction
    /// (`pg_terminate_backend`, a failover, a server restart), the failed statement's error arrives just before the
    /// connection closes, and Fluent's ROLLBACK, sent in between, waited forever and held the pool's connection, until
    /// every request of the service timed out waiting for one. Here every statement of the transaction gives up once
    /// its connection is closed (`ClosingAwareSQLDatabase`; the server has rolled the transaction back itself), and
    /// the pool replaces the closed connection.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard flavor == .postgres else {
            return try await fluent.transaction { tx in try await body(tx as! any SQLDatabase) }
        }
        return try await fluent.withConnection { connection in
            let postgres = try await (connection as! any PostgresDatabase)
                .withConnection { $0.eventLoop.makeSucceededFuture($0) }.get()
            let tx = ClosingAwareSQLDatabase(base: connection as! any SQLDatabase, connection: postgres)
            try await tx.raw("BEGIN").run()
            let result: T
            do {
                result = try await body(tx)
            } catch {
                if !postgres.isClosed { try await tx.raw("ROLLBACK").run() }
                throw error
            }
            try await tx.raw("COMMIT").run()
            return result
        }
    }

    /// How long a statement waits, sleeping, for a write lock another process holds on the SQLite file (a backup,
    /// the sqlite3 shell) before it fails with "database is locked": its request answers 500, and the caller retries
    /// (the ML service its callback, the dispatcher its claim). Shorter than the pool's 10 s connection timeout, so a
    /// long lock fails one statement at a time instead of starving every waiter.
    static let sqliteLockWaitMs = 5000

    /// Replaces SQLiteNIO's busy handler, which retries at once and forever (a core spun at 100% and the only
    /// connection held for as long as the other process keeps its lock), with SQLite's sleeping, bounded one.
    /// Per connection: run once at start-up on the one connection SQLite uses.
    func limitSQLiteLockWait() async throws {
        try await sql.raw("PRAGMA busy_timeout = \(unsafeRaw: String(Self.sqliteLockWaitMs))").run()
    }

    /// Statement that claims rows exclusively inside a subquery (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
    /// SQLite's single writer already serialises the UPDATE).
    var skipLockedClause: String { flavor == .postgres ? " FOR UPDATE SKIP LOCKED" : "" }
}

/// Milliseconds since 1970, the unit of every `*_at` column.
func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

/// The statements of one PostgreSQL connection, each failing with `ConnectionClosedError` once the connection is
/// closed instead of waiting for an answer that PostgresNIO (1.33) never delivers for a statement written while the
/// server was closing the connection. Checked every second while a statement runs (a timer, cancelled when it ends).
struct ClosingAwareSQLDatabase: SQLDatabase {
    let base: any SQLDatabase
    let connection: PostgresConnection

    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        let connection = self.connection
        let answer = connection.eventLoop.makePromise(of: Void.self)
        let watch = connection.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            if connection.isClosed { answer.fail(ConnectionClosedError()) }
        }
        base.execute(sql: query, onRow).hop(to: connection.eventLoop).whenComplete { result in
            watch.cancel()
            answer.completeWith(result)
        }
        answer.futureResult.whenComplete { _ in watch.cancel() }
        return answer.futureResult
    }
}

/// A statement whose PostgreSQL connection the server closed before it answered; its transaction was rolled back.
struct ConnectionClosedError: Error, CustomStringConvertible {
    var description: String { "the PostgreSQL connection was closed before the statement was answered" }
}
