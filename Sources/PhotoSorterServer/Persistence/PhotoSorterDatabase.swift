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
    static func parse(_ url: String) -> (flavor: DatabaseFlavor, location: String) {
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") { return (.postgres, url) }
        if url.hasPrefix("sqlite://") { return (.sqlite, String(url.dropFirst("sqlite://".count))) }
        return (.sqlite, url)
    }
}

/// Access to the database for the service's adapters: plain queries, and write transactions.
///
/// SQLite allows one writer: two transactions that both read then write can fail with SQLITE_BUSY instead
/// of waiting. Write transactions therefore pass through one in-process gate on SQLite (which is
/// single-instance by nature); PostgreSQL transactions run concurrently and lock rows instead.
public struct PhotoSorterDatabase: Sendable {
    public let flavor: DatabaseFlavor
    private let databases: Databases
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let writeGate = AsyncLock()

    init(flavor: DatabaseFlavor, databases: Databases, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.flavor = flavor
        self.databases = databases
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    public var fluent: any Database { databases.database(logger: logger, on: eventLoopGroup.any())! }
    public var sql: any SQLDatabase { fluent as! any SQLDatabase }

    /// Runs `body` in one transaction; everything or nothing is written.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let run: @Sendable () async throws -> T = {
            try await fluent.transaction { tx in try await body(tx as! any SQLDatabase) }
        }
        return flavor == .sqlite ? try await writeGate.withLock(run) : try await run()
    }

    /// Statement that claims rows exclusively inside a subquery (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
    /// SQLite's single writer already serialises the UPDATE).
    var skipLockedClause: String { flavor == .postgres ? " FOR UPDATE SKIP LOCKED" : "" }
}

/// Milliseconds since 1970, the unit of every `*_at` column.
func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
