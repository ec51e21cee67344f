import Foundation
@testable import PhotoSorterServer
import SQLKit
import XCTest

/// A SQLite file locked by another process underneath a running service (e2e/test_faults.py runs the same
/// fault end to end): a statement waits for the lock sleeping, and for a bounded time.
final class SQLiteLockTests: XCTestCase {
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
