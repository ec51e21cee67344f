import Foundation
import Logging
import NIOConcurrencyHelpers
import PhotoSorterCore
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

/// What a re-cluster changed.
public struct ReclusterResult: Codable, Sendable, Equatable {
    public var faces: Int
    /// Live persons afterwards.
    public var persons: Int
    public var facesMoved: Int
    /// Persons that kept their id with at least one face.
    public var personsKept: Int
    /// New ids (splits).
    public var personsCreated: Int
    /// Ids that became redirects (merges).
    public var personsMerged: Int
    public var confirmedFaces: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case faces, persons, seconds
        case facesMoved = "faces_moved"
        case personsKept = "persons_kept"
        case personsCreated = "persons_created"
        case personsMerged = "persons_merged"
        case confirmedFaces = "confirmed_faces"
    }
}

/// Re-clustering as a job (`recluster_jobs`): `start` records it and runs it in the background, `run` runs one
/// to the end (the CLI, `sort`'s closing re-cluster). The work is one transaction (`recluster`, through
/// `IdentityService.change`), so a job that dies half-way changed nothing; on SQLite (one instance) such a job
/// is marked FAILED at the next start-up.
public final class ReclusterService: Sendable {
    private let database: PhotoSorterDatabase
    private let identity: IdentityService
    private let config: ServiceConfig
    private let logger: Logger
    private let running = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(database: PhotoSorterDatabase, identity: IdentityService, config: ServiceConfig, logger: Logger) {
        self.database = database
        self.identity = identity
        self.config = config
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
        return try row.decode(column: "library_marks", as: String.self) == (try await Self.libraryMarks(on: database.sql))
    }

    private func execute(_ jobID: String) async throws -> ReclusterResult {
        do {
            let result = try await recluster()
            try await database.sql.raw("""
                UPDATE recluster_jobs SET status = 'COMPLETED', result = \(bind: String(decoding: try JSONEncoder().encode(result), as: UTF8.self)),
                    library_marks = \(bind: try await Self.libraryMarks(on: database.sql)), finished_at = \(bind: nowMs())
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

extension ReclusterService {
    /// Re-clusters every face under the stored constraints (`Reclustering`) and writes what changed in one
    /// transaction: moved faces, new persons (splits), redirects for ids no cluster kept (merges), fresh runner-ups,
    /// and the derived counts. Running it again on an unchanged library changes nothing.
    ///
    /// The clustering (seconds at 100,000 faces, much longer at a million) is computed before the identity lock and
    /// the transaction are taken: inside them it held every commit up and, on SQLite, the database connection
    /// requests wait for (they timed out, answering 500). Under the lock the plan is written when the library is
    /// still as it was read (`libraryMarks`); else it is computed again there, on what the transaction sees.
    func recluster() async throws -> ReclusterResult {
        let started = Date()
        let before = try await Self.libraryMarks(on: database.sql)
        let prepared: ReclusterPlan?
        do {
            prepared = try await reclusterPlan(model: try await identity.storedModel(on: database.sql), on: database.sql)
        } catch let removed as StoredFaceVectors.FaceRemoved {
            // The library changed under the read: the plan is made again under the lock.
            logger.info("recluster plans again under the lock", metadata: ["reason": "\(removed)"])
            prepared = nil
        }
        let unchangedWhileComputing = try await Self.libraryMarks(on: database.sql) == before
        return try await identity.change { tx, _, model in
            let plan: ReclusterPlan
            if let prepared, unchangedWhileComputing, prepared.model == model, try await Self.libraryMarks(on: tx) == before {
                plan = prepared
            } else {
                plan = try await self.reclusterPlan(model: model, on: tx)
            }
            guard let outcome = plan.outcome else {
                return (ReclusterResult(faces: 0, persons: 0, facesMoved: 0, personsKept: 0, personsCreated: 0, personsMerged: 0,
                                        confirmedFaces: 0, seconds: Date().timeIntervalSince(started)), [])
            }
            let faces = plan.faces
            let input = faces.map(\.face)
            let newIDs = try await PersonBookkeeping.insertNewPersons(of: outcome, faces: input, on: tx)
            var movedPositions: [Int] = []
            var moves: [FaceMove] = []
            var reassignments: [FacesTable.Reassignment] = []
            var photos = Set<Int64>(), persons = Set<Int64>()
            for (position, (stored, assignment)) in zip(faces, outcome.assignments).enumerated() {
                let person = assignment.person?.id(newIDs: newIDs)
                let similarity = assignment.similarity.map(Double.init)
                let runnerUp = assignment.runnerUp?.id(newIDs: newIDs)
                let runnerUpSimilarity = assignment.runnerUpSimilarity.map(Double.init)
                let look = assignment.look
                let moved = person != stored.person || look != stored.face.look
                if moved {
                    movedPositions.append(position)
                    photos.insert(stored.face.photo)
                    persons.formUnion([stored.person, person].compactMap { $0 })
                }
                // A confirmed face keeps the similarity it had; only the rule's own decisions are rewritten.
                let newSimilarity = stored.face.confirmed ? stored.similarity : similarity
                guard moved || newSimilarity != stored.similarity || runnerUp != stored.runnerUp
                    || runnerUpSimilarity != stored.runnerUpSimilarity else { continue }
                reassignments.append(FacesTable.Reassignment(face: stored.face.id, person: person, look: look, similarity: newSimilarity,
                                                             runnerUp: runnerUp, runnerUpSimilarity: runnerUpSimilarity))
            }
            try await FacesTable.reassign(reassignments, on: tx)
            // The index takes each moved face's vector; only those are read again.
            try await plan.vectors.reading(on: tx).forEachChunk(of: movedPositions) { position, vector in
                let stored = faces[position], assignment = outcome.assignments[position]
                moves.append(FaceMove(embeddingID: stored.face.id, face: vector, from: stored.person, fromLook: stored.face.look,
                                      to: assignment.person?.id(newIDs: newIDs), toLook: assignment.look))
            }
            try await PersonBookkeeping.refresh(photos: photos, persons: persons, on: tx)
            try await PersonBookkeeping.recordMerges(of: outcome, newIDs: newIDs, on: tx)
            let livePersons = Set(outcome.assignments.compactMap(\.person))
            let result = ReclusterResult(
                faces: faces.count, persons: livePersons.count, facesMoved: moves.count,
                personsKept: livePersons.count - outcome.newPersonCount, personsCreated: outcome.newPersonCount,
                personsMerged: outcome.merged.count, confirmedFaces: faces.filter(\.face.confirmed).count,
                seconds: Date().timeIntervalSince(started))
            return (result, moves)
        }
    }

    /// The faces a re-cluster read and where it puts them; no outcome when there is no face (or no model yet).
    private struct ReclusterPlan: Sendable {
        let model: FaceModel?
        let faces: [StoredFace]
        /// Where the faces' vectors are read (by position in `faces`).
        let vectors: StoredFaceVectors
        let outcome: Reclustering.Outcome?
    }

    private func reclusterPlan(model: FaceModel?, on db: any SQLDatabase) async throws -> ReclusterPlan {
        guard let model else { return ReclusterPlan(model: nil, faces: [], vectors: StoredFaceVectors(ids: [], db: db), outcome: nil) }
        let faces = try await Self.facesForRecluster(model: model, on: db)
        let vectors = StoredFaceVectors(ids: faces.map(\.face.id), db: db)
        guard !faces.isEmpty else { return ReclusterPlan(model: model, faces: faces, vectors: vectors, outcome: nil) }
        let outcome = try await Reclustering.run(faces.map(\.face), vectors: vectors, policy: config.identityPolicy(for: model),
                                                 retired: try await PersonBookkeeping.retiredIDs(on: db))
        return ReclusterPlan(model: model, faces: faces, vectors: vectors, outcome: outcome)
    }

    /// Everything a re-cluster's outcome depends on besides the vectors themselves, as one comparable text: the
    /// identity generation, the last face id and change-log entry (faces stored, moved, removed; merges), and how
    /// many faces users confirmed or rejected.
    static func libraryMarks(on db: any SQLDatabase) async throws -> String {
        let row = try await db.raw("""
            SELECT (SELECT generation FROM identity_generation WHERE id = 1) AS generation,
                (SELECT COALESCE(MAX(id), 0) FROM embeddings) AS last_face,
                (SELECT COALESCE(MAX(seq), 0) FROM identity_changes) AS last_change,
                (SELECT COUNT(*) FROM embeddings WHERE confirmed = \(bind: true)) AS confirmed,
                (SELECT COUNT(*) FROM face_rejections) AS rejections
            """).first()!
        return try ["generation", "last_face", "last_change", "confirmed", "rejections"]
            .map { "\($0)=\(try row.decode(column: $0, as: Int64?.self) ?? 0)" }.joined(separator: " ")
    }

    private struct StoredFace: Sendable {
        let face: Reclustering.Face
        /// Nil: unsorted.
        let person: Int64?
        let similarity: Double?
        let runnerUp: Int64?
        let runnerUpSimilarity: Double?
    }

    /// Every face with its constraints but not its vector (`StoredFaceVectors` reads those as the replay reaches them),
    /// photos in the order their faces were first committed; `model` says which are unsure.
    ///
    /// The order is read first, as ids alone, and the faces then in storage order, each decoded as it arrives and put
    /// in its place: sorting the rows themselves, when they still carried their vectors, made SQLite sort them
    /// through a temporary file (bench/RESULTS.md, "Re-cluster at 200k faces"); without the vectors this was not
    /// measured again. Outside a transaction the reads may see different libraries; such a plan is
    /// thrown away (`recluster` checks `libraryMarks`), so a face only one of them saw is simply left out.
    private static func facesForRecluster(model: FaceModel, on tx: any SQLDatabase) async throws -> [StoredFace] {
        let rejected = try await PersonBookkeeping.rejectionsByFace(on: tx)
        let order = try await tx.raw("""
            SELECT e.id FROM embeddings e JOIN (SELECT photo_id, MIN(id) AS first_id FROM embeddings GROUP BY photo_id) f ON f.photo_id = e.photo_id
            ORDER BY f.first_id, e.face_index
            """).decodedRows { try $0.decode(column: "id", as: Int64.self) }
        let position = Dictionary(uniqueKeysWithValues: zip(order, order.indices))
        var slots = [StoredFace?](repeating: nil, count: order.count)
        for face in try await tx.raw("""
            SELECT id, photo_id, person_id, look_id, embedding_norm, confirmed, similarity, runner_up_person_id, runner_up_similarity
            FROM embeddings
            """).decodedRows({ try storedFace($0, model: model, rejected: rejected) }) {
            if let slot = position[face.face.id] { slots[slot] = face }
        }
        return slots.compactMap { $0 }
    }

    private static func storedFace(_ row: any SQLRow, model: FaceModel, rejected: [Int64: Set<Int64>]) throws -> StoredFace {
        let id = try row.decode(column: "id", as: Int64.self), person = try row.decode(column: "person_id", as: Int64?.self)
        return StoredFace(
            face: Reclustering.Face(
                id: id, photo: try row.decode(column: "photo_id", as: Int64.self), person: person, confirmed: try row.decode(column: "confirmed", as: Bool.self), rejected: rejected[id] ?? [],
                look: try row.decode(column: "look_id", as: Int64?.self),
                mayFoundPerson: model.mayFoundPerson(embeddingNorm: try row.decode(column: "embedding_norm", as: Double?.self))),
            person: person,
            similarity: try row.decode(column: "similarity", as: Double?.self),
            runnerUp: try row.decode(column: "runner_up_person_id", as: Int64?.self),
            runnerUpSimilarity: try row.decode(column: "runner_up_similarity", as: Double?.self))
    }
}
