import Foundation
import Logging
import NIOConcurrencyHelpers
import SQLKit
import Vapor

/// GET /recluster/{id}, and the answer of POST /recluster.
public struct ReclusterStatus: Content, Sendable {
    public var jobID: String
    /// RUNNING, then COMPLETED or FAILED.
    public var status: String
    public var done: Bool
    public var result: ReclusterResult?
    public var error: String?
    public var createdAt: Int64
    public var finishedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case status, done, result, error
        case jobID = "job_id"
        case createdAt = "created_at"
        case finishedAt = "finished_at"
    }
}

/// Re-clustering as a job (`recluster_jobs`): `start` records it and runs it in the background, `run` runs one
/// to the end (the CLI, `sort`'s closing re-cluster). The work is one transaction
/// (`IdentityService.recluster`), so a job that dies half-way changed nothing; on SQLite (one instance) such a job
/// is marked FAILED at the next start-up.
public final class ReclusterService: Sendable {
    private let database: PhotoSorterDatabase
    private let identity: IdentityService
    private let logger: Logger
    private let running = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(database: PhotoSorterDatabase, identity: IdentityService, logger: Logger) {
        self.database = database
        self.identity = identity
        self.logger = logger
    }

    /// Starts a job in the background; while one of this instance runs, answers with that one.
    public func start() async throws -> ReclusterStatus {
        if let current = try await database.sql.raw("""
            SELECT job_id FROM recluster_jobs WHERE status = 'RUNNING' ORDER BY created_at DESC LIMIT 1
            """).first(), running.withLockedValue({ $0 != nil }) {
            return try await status(try current.decode(column: "job_id", as: String.self))
        }
        let jobID = try await createJob()
        running.withLockedValue { task in
            task = Task {
                _ = try? await self.execute(jobID)
                self.running.withLockedValue { $0 = nil }
            }
        }
        return try await status(jobID)
    }

    /// Runs a job to the end and returns what it changed.
    public func run() async throws -> ReclusterResult {
        try await execute(try await createJob())
    }

    public func status(_ jobID: String) async throws -> ReclusterStatus {
        guard let row = try await database.sql.raw("SELECT * FROM recluster_jobs WHERE job_id = \(bind: jobID)").first() else {
            throw PhotoSorterError.reclusterJobNotFound(jobID)
        }
        let state = try row.decode(column: "status", as: String.self)
        return ReclusterStatus(
            jobID: jobID, status: state, done: state != "RUNNING",
            result: try row.decode(column: "result", as: String?.self).map { try JSONDecoder().decode(ReclusterResult.self, from: Data($0.utf8)) },
            error: try row.decode(column: "error", as: String?.self),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            finishedAt: try row.decode(column: "finished_at", as: Int64?.self))
    }

    /// Marks jobs a previous process left RUNNING as FAILED (their transaction never committed).
    func failInterruptedJobs() async throws {
        try await database.sql.raw("""
            UPDATE recluster_jobs SET status = 'FAILED', error = 'interrupted before it finished; nothing was changed',
                finished_at = \(bind: nowMs()) WHERE status = 'RUNNING'
            """).run()
    }

    /// Waits for a background job of this instance (shutdown, tests).
    func waitForBackgroundJob() async {
        await running.withLockedValue { $0 }?.value
    }

    private func createJob() async throws -> String {
        let jobID = UUID().uuidString
        try await database.sql.raw("""
            INSERT INTO recluster_jobs (job_id, status, created_at) VALUES (\(bind: jobID), 'RUNNING', \(bind: nowMs()))
            """).run()
        return jobID
    }

    /// Whether the library is as the last completed re-cluster left it: no face stored, moved or removed, no
    /// correction and no bulk change since. A re-cluster then would change nothing (it is idempotent), and at a
    /// million faces it takes a long time: `sort` skips its closing one.
    public func isCurrent() async throws -> Bool {
        guard let row = try await database.sql.raw("""
            SELECT library_marks FROM recluster_jobs WHERE status = 'COMPLETED' AND library_marks IS NOT NULL
            ORDER BY finished_at DESC LIMIT 1
            """).first() else { return false }
        return try row.decode(column: "library_marks", as: String.self) == (try await IdentityService.libraryMarks(on: database.sql))
    }

    private func execute(_ jobID: String) async throws -> ReclusterResult {
        do {
            let result = try await identity.recluster()
            try await database.sql.raw("""
                UPDATE recluster_jobs SET status = 'COMPLETED', result = \(bind: String(decoding: try JSONEncoder().encode(result), as: UTF8.self)),
                    library_marks = \(bind: try await IdentityService.libraryMarks(on: database.sql)), finished_at = \(bind: nowMs())
                WHERE job_id = \(bind: jobID)
                """).run()
            logger.info("recluster finished", metadata: [
                "job_id": "\(jobID)", "faces": "\(result.faces)", "faces_moved": "\(result.facesMoved)",
                "persons_created": "\(result.personsCreated)", "persons_merged": "\(result.personsMerged)",
                "seconds": "\(String(format: "%.2f", result.seconds))"])
            return result
        } catch {
            logger.error("recluster failed", metadata: ["job_id": "\(jobID)", "error": "\(error)"])
            try? await database.sql.raw("""
                UPDATE recluster_jobs SET status = 'FAILED', error = \(bind: "\(error)"), finished_at = \(bind: nowMs())
                WHERE job_id = \(bind: jobID)
                """).run()
            throw error
        }
    }
}
