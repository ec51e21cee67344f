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
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await fluent.transaction { tx in try await body(tx as! any SQLDatabase) }
    }

    /// Statement that claims rows exclusively inside a subquery (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
    /// SQLite's single writer already serialises the UPDATE).
    var skipLockedClause: String { flavor == .postgres ? " FOR UPDATE SKIP LOCKED" : "" }
}

/// Milliseconds since 1970, the unit of every `*_at` column.
func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
