import Foundation
import NIOConcurrencyHelpers
@testable import PhotoSorterServer
import SQLKit
import XCTest

/// Faults underneath a running service (tests/e2e/test_faults.py runs the same faults end to end): SQLite locked by
/// another process, PostgreSQL connections terminated, an ML service restarted while it held photos.
final class FaultScenarios: XCTestCase {
    /// A write lock another process holds on the SQLite file: a statement waits for it sleeping (not spinning a
    /// core), goes through once the lock is released, and fails with "database is locked" after
    /// `sqliteLockWaitMs` rather than waiting as long as the lock lasts.
    func testSQLiteLockedByAnotherProcessIsWaitedOutSleepingAndBounded() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            let db = service.services.database
            let waitMs = try await db.sql.raw("PRAGMA busy_timeout").first()?.decode(column: "timeout", as: Int.self)
            XCTAssertEqual(waitMs, PhotoSorterDatabase.sqliteLockWaitMs)
            let write = "UPDATE identity_generation SET generation = generation WHERE id = 1"

            let short = try await ExternalLock.hold(service.config.databaseURL, seconds: 1.5)
            let (shortSeconds, shortCPU) = try await measure { try await db.sql.raw(SQLQueryString(write)).run() }
            try short.finish()
            XCTAssertGreaterThan(shortSeconds, 0.8, "the write went through while the other process held the lock")
            XCTAssertLessThan(shortCPU, 0.5 * shortSeconds, "waiting for the lock spun the CPU (\(shortCPU) s CPU in \(shortSeconds) s)")

            let long = try await ExternalLock.hold(service.config.databaseURL, seconds: 9)
            let (longSeconds, longCPU) = try await measure {
                do {
                    try await db.sql.raw(SQLQueryString(write)).run()
                    XCTFail("a write succeeded while another process held the lock")
                } catch {
                    XCTAssertTrue("\(error)".contains("locked"), "\(error)")
                }
            }
            try long.finish()
            let bound = Double(PhotoSorterDatabase.sqliteLockWaitMs) / 1000
            XCTAssertEqual(longSeconds, bound, accuracy: 1.5, "the write gave up after \(longSeconds) s, not after the bound")
            XCTAssertLessThan(longCPU, 0.5 * longSeconds, "waiting for the lock spun the CPU (\(longCPU) s CPU in \(longSeconds) s)")
            try await db.sql.raw(SQLQueryString(write)).run()  // and the connection works again
        }
    }

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

    func testPhotosHandedToAnMLServiceThatRestartedSinceAreRetriedAtOnceOnSQLite() async throws {
        try await Self.photosHandedToAnMLServiceThatRestartedSinceAreRetriedAtOnce(.sqlite)
    }

    func testPhotosHandedToAnMLServiceThatRestartedSinceAreRetriedAtOnceOnPostgres() async throws {
        try await Self.photosHandedToAnMLServiceThatRestartedSinceAreRetriedAtOnce(.postgres)
    }

    /// A photo handed over before every ML service (re)started was lost with the process that held it: the
    /// stale-PROCESSING scheduler marks it FAILED for a retry now, not after the processing timeout. A photo claimed
    /// within the hand-over grace before the restart, and any photo while the ML services' start is unknown, waits.
    static func photosHandedToAnMLServiceThatRestartedSinceAreRetriedAtOnce(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, backgroundWork: false) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let ids = try await service.photos().map(\.photoID).sorted()
            XCTAssertEqual(ids.count, 2)
            let now = nowMs(), restartedAt = now - 20_000
            for (id, claimedAt) in zip(ids, [now - 60_000, restartedAt - 1_000]) {
                try await service.services.database.sql.raw("""
                    UPDATE photos SET status = 'PROCESSING', processing_started_at = \(bind: claimedAt) WHERE id = \(bind: id)
                    """).run()
            }
            func scheduler(_ started: Int64?) -> StaleProcessingScheduler {
                StaleProcessingScheduler(database: service.services.database, statuses: service.services.statuses,
                                         timeoutSeconds: 600, mlStartedAtMs: { started }, handOverGraceMs: 5_000,
                                         logger: service.app.logger)
            }
            let unknown = try await scheduler(nil).runOnce()
            XCTAssertEqual(unknown, [], "nothing is known about the ML services: only the timeout applies")
            let marked = try await scheduler(restartedAt).runOnce()
            XCTAssertEqual(marked, [ids[0]], "only the photo handed over before the restart, beyond the grace")
            let rows = try await service.services.database.sql.raw("""
                SELECT id, status, last_error, next_attempt_at FROM photos ORDER BY id
                """).all()
            XCTAssertEqual(try rows.map { try $0.decode(column: "status", as: String.self) }, ["FAILED", "PROCESSING"])
            XCTAssertEqual(try rows[0].decode(column: "last_error", as: String?.self),
                           "the ML service restarted after the photo was handed to it (its result was lost)")
            XCTAssertNotNil(try rows[0].decode(column: "next_attempt_at", as: Int64?.self), "a retry is scheduled")
        }
    }

    func testPhotosWaitReadyWithoutUsingRetriesWhileNoMLServiceAnswersOnSQLite() async throws {
        try await Self.photosWaitReadyWithoutUsingRetriesWhileNoMLServiceAnswers(.sqlite)
    }

    func testPhotosWaitReadyWithoutUsingRetriesWhileNoMLServiceAnswersOnPostgres() async throws {
        try await Self.photosWaitReadyWithoutUsingRetriesWhileNoMLServiceAnswers(.postgres)
    }

    /// An ML service that is down (nothing listens on its port) is not the photos' failure: with one retry allowed
    /// and 0.2 s of backoff, photos would have used up their retries within a second; they stay READY instead,
    /// retry_count 0, for as long as it is down.
    static func photosWaitReadyWithoutUsingRetriesWhileNoMLServiceAnswers(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor, tune: { config in
            config.mlServiceURLs = ["http://127.0.0.1:9"]  // the discard port: nothing listens
            config.maxRetries = 1
        }) { service in
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            try await Task.sleep(for: .seconds(4))
            let rows = try await service.services.database.sql.raw("SELECT status, retry_count, last_error FROM photos").all()
            XCTAssertEqual(rows.count, 2)
            for row in rows {
                // READY, or PROCESSING for the instant between a claim and its requeue.
                XCTAssertTrue(["READY", "PROCESSING"].contains(try row.decode(column: "status", as: String.self)))
                XCTAssertEqual(try row.decode(column: "retry_count", as: Int.self), 0)
                XCTAssertNil(try row.decode(column: "last_error", as: String?.self))
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

    /// Wall and CPU seconds (of this whole process) `body` took.
    private func measure(_ body: () async throws -> Void) async throws -> (seconds: Double, cpu: Double) {
        let cpu0 = processCPUSeconds(), t0 = Date()
        try await body()
        return (Date().timeIntervalSince(t0), processCPUSeconds() - cpu0)
    }

    private func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// Another process (python3's sqlite3) holding `BEGIN EXCLUSIVE` on a SQLite file for a while.
private struct ExternalLock {
    let process: Process

    static func hold(_ path: String, seconds: Double) async throws -> ExternalLock {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import sqlite3, sys, time
            con = sqlite3.connect(sys.argv[1], isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(float(sys.argv[2]))
            con.execute("COMMIT")
            """, path, String(seconds)]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let line = await Task.detached { String(decoding: out.fileHandleForReading.readData(ofLength: 7), as: UTF8.self) }.value
        guard line.hasPrefix("locked") else {
            process.terminate()
            throw LockError(message: "python3 could not lock \(path): \(line)")
        }
        return ExternalLock(process: process)
    }

    /// Waits until the other process released the lock and exited.
    func finish() throws {
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw LockError(message: "lock holder exited \(process.terminationStatus)") }
    }

    struct LockError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
