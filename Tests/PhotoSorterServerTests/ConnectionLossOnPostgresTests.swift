import Foundation
import NIOConcurrencyHelpers
@testable import PhotoSorterServer
import SQLKit
import XCTest

/// PostgreSQL connections lost underneath a running service (e2e/test_faults.py runs the same faults end to
/// end): terminated connections are replaced by the next queries, and transactions cut by terminated backends give
/// their connections back.
final class ConnectionLossOnPostgresTests: XCTestCase {
    /// Every connection of the service's pool terminated by the server (`pg_terminate_backend`, a restart or a
    /// failover): the following queries open new connections instead of failing.
    func testPostgresConnectionsTerminatedAreReplacedByTheNextQueries() async throws {
        try await TestService.run(.postgres, backgroundWork: false) { service in
            let db = service.services.database
            for _ in 0..<16 { _ = try await db.sql.raw("SELECT COUNT(*) AS n FROM photos").all() }
            let killed = try await db.sql.raw("""
                SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """).first()?.decode(column: "n", as: Int.self) ?? 0
            XCTAssertGreaterThan(killed, 0, "no connection of the pool was terminated")
            try await Task.sleep(for: .milliseconds(200))
            for _ in 0..<32 {
                _ = try await db.sql.raw("SELECT COUNT(*) AS n FROM photos").all()
                try await db.transaction { tx in
                    try await tx.raw("UPDATE identity_generation SET generation = generation WHERE id = 1").run()
                }
            }
        }
    }

    /// Backends terminated again and again while transactions run on every connection of the pool: each cut
    /// transaction fails and gives its connection back, and the service's queries keep being answered afterwards.
    /// (Fluent's own transaction sent ROLLBACK on the dead connection, which PostgresNIO never answers: the pool's
    /// connections were held forever and every request timed out waiting for one.)
    func testPostgresTransactionsCutByTerminatedBackendsGiveTheirConnectionsBack() async throws {
        try await TestService.run(.postgres, backgroundWork: false) { service in
            let db = service.services.database
            let stop = NIOLockedValueBox(false)
            let workers = (0..<8).map { _ in
                Task {
                    var (committed, failed) = (0, 0)
                    while !stop.withLockedValue({ $0 }) {
                        do {
                            try await db.transaction { tx in
                                try await tx.raw("SELECT pg_advisory_xact_lock(\(bind: IdentityService.advisoryLockKey))").run()
                                try await tx.raw("SELECT pg_sleep(0.01)").run()
                            }
                            committed += 1
                        } catch {
                            failed += 1
                        }
                    }
                    return (committed, failed)
                }
            }
            var terminated = 0
            for _ in 0..<10 {
                try await Task.sleep(for: .milliseconds(300))
                terminated += try await Self.terminateBackends(service.config.databaseURL)
            }
            stop.withLockedValue { $0 = true }
            XCTAssertGreaterThan(terminated, 0)
            for probe in 0..<4 {
                let answered = try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask { _ = try await db.sql.raw("SELECT COUNT(*) AS n FROM photos").all(); return true }
                    group.addTask { try await Task.sleep(for: .seconds(8)); return false }
                    defer { group.cancelAll() }
                    return try await group.next()!
                }
                XCTAssertTrue(answered, "probe \(probe): no answer within 8 s after \(terminated) terminations (the pool is wedged)")
                guard answered else { return }
            }
            var outcomes: [(Int, Int)] = []
            for worker in workers { outcomes.append(await worker.value) }
            XCTAssertGreaterThan(outcomes.map(\.0).reduce(0, +), 0, "no transaction committed")
        }
    }

    /// `pg_terminate_backend` of every client connection to the database at `url`, through psql (another process);
    /// returns how many it terminated.
    private static func terminateBackends(_ url: String) async throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", #"exec "$(ls /usr/lib/postgresql/*/bin/psql | tail -n 1)" "$0" -tAc "$1""#, url, """
            SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
            """]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = await Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
        process.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
