import Foundation
import Logging
import PhotoSorterCore
import SQLKit
import Vapor

/// A `reprocess_jobs` row: re-analysis of the whole library with `model`.
struct ReprocessJob: Sendable {
    let id: String
    let model: FaceModel
}

/// What a finished reprocess changed.
public struct ReprocessResult: Codable, Sendable, Equatable {
    /// Photos with a result of the new model, and faces found in them.
    public var photos: Int
    public var faces: Int
    /// Photos the new model could not analyse (FAILED): their old faces are gone with the old model.
    public var photosFailed: Int
    public var persons: Int
    /// Persons that kept their id (the new grouping shares the most photos with them), got a new id, or
    /// lost theirs (no new group matched them: a redirect to the person now showing most of their photos).
    public var personsKept: Int
    public var personsCreated: Int
    public var personsRemoved: Int

    enum CodingKeys: String, CodingKey {
        case photos, faces, persons
        case photosFailed = "photos_failed"
        case personsKept = "persons_kept"
        case personsCreated = "persons_created"
        case personsRemoved = "persons_removed"
    }
}

/// GET /reprocess/{id}, and the answer of POST /reprocess.
public struct ReprocessStatus: Content, Sendable {
    public var jobID: String
    public var model: String
    /// RUNNING until every photo is analysed, then COMPLETED.
    public var status: String
    public var done: Bool
    public var total: Int
    /// Photos analysed by the new model so far, photos still queued or in flight, photos that failed.
    public var analysed: Int
    public var pending: Int
    public var failed: Int
    public var result: ReprocessResult?
    public var createdAt: Int64
    public var finishedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case model, status, done, total, analysed, pending, failed, result
        case jobID = "job_id"
        case createdAt = "created_at"
        case finishedAt = "finished_at"
    }
}

/// Re-analyses every photo with a chosen model and rebuilds person assignments, keeping person ids wherever
/// the new grouping allows: the way to move a library to another face model or to new thresholds
/// (README "Face models").
///
/// Starting a job queues every photo again. While it runs, results of its model are staged in
/// `reprocess_photos` / `reprocess_faces` (the library keeps its old faces and persons meanwhile). When no
/// photo is pending, `finishIfComplete` (run by a scheduler) replaces the faces and persons in one transaction
/// (`finish`). Interrupted, it resumes: a new start with the same model re-queues only
/// the photos without a staged result.
public final class ReprocessService: Sendable {
    private let database: PhotoSorterDatabase
    private let identity: IdentityService
    private let ml: MLClient
    private let maxRetries: Int
    private let config: ServiceConfig
    private let logger: Logger
    private let onWorkQueued: @Sendable () -> Void

    init(database: PhotoSorterDatabase, identity: IdentityService, ml: MLClient, config: ServiceConfig, logger: Logger,
         onWorkQueued: @escaping @Sendable () -> Void) {
        self.database = database
        self.identity = identity
        self.ml = ml
        self.config = config
        self.maxRetries = config.maxRetries
        self.logger = logger
        self.onWorkQueued = onWorkQueued
    }

    /// Starts a job for `model`, or resumes the running one for the same model.
    public func start(model: FaceModel) async throws -> ReprocessStatus {
        if let running = await ml.model(), running != model.name {
            throw PhotoSorterError.conflict("the ML service runs the \(running) model; restart it with PHOTO_SORTER_ML_MODEL=\(model.name) "
                + "before reprocessing with \(model.name)")
        }
        let (jobID, requeued) = try await database.transaction { tx -> (String, Int) in
            try await self.identity.lockAcrossInstances(tx)
            let jobID: String
            if let running = try await Self.runningJob(on: tx) {
                guard running.model == model else {
                    throw PhotoSorterError.conflict("a reprocess to \(running.model.name) is running (job \(running.id)); "
                        + "finish it with `photo-sorter reprocess --model \(running.model.name)` first")
                }
                jobID = running.id
            } else {
                jobID = UUID().uuidString
                let total = try await tx.raw("SELECT COUNT(*) AS n FROM photos").first()!.decode(column: "n", as: Int.self)
                try await tx.raw("""
                    INSERT INTO reprocess_jobs (job_id, model, status, total, created_at)
                    VALUES (\(bind: jobID), \(bind: model.name), 'RUNNING', \(bind: total), \(bind: nowMs()))
                    """).run()
            }
            // Photos already in the queue or in flight stay there; their results are staged when they arrive.
            let requeued = try await PhotosTable.requeueForReprocess(jobID: jobID, on: tx)
            return (jobID, requeued)
        }
        logger.info("reprocess started", metadata: ["job_id": "\(jobID)", "model": "\(model.name)", "queued": "\(requeued)"])
        onWorkQueued()
        return try await status(jobID)
    }

    public func status(_ jobID: String) async throws -> ReprocessStatus {
        guard let row = try await database.sql.raw("SELECT * FROM reprocess_jobs WHERE job_id = \(bind: jobID)").first() else {
            throw PhotoSorterError.reprocessJobNotFound(jobID)
        }
        let state = try row.decode(column: "status", as: String.self)
        let result = try row.decode(column: "result", as: String?.self)
            .map { try JSONDecoder().decode(ReprocessResult.self, from: Data($0.utf8)) }
        var analysed = result?.photos ?? 0, pending = 0, failed = result?.photosFailed ?? 0
        if state == "RUNNING" {
            (analysed, pending, failed) = try await progress(of: jobID)
        }
        return ReprocessStatus(
            jobID: jobID, model: try row.decode(column: "model", as: String.self), status: state, done: state != "RUNNING",
            total: try row.decode(column: "total", as: Int.self), analysed: analysed, pending: pending, failed: failed,
            result: result, createdAt: try row.decode(column: "created_at", as: Int64.self),
            finishedAt: try row.decode(column: "finished_at", as: Int64?.self))
    }

    /// Finishes the running job once no photo is pending; returns what it changed, nil when there was nothing to do.
    @discardableResult
    public func finishIfComplete() async throws -> ReprocessResult? {
        guard let job = try await Self.runningJob(on: database.sql) else { return nil }
        guard try await progress(of: job.id).pending == 0 else { return nil }
        let result = try await finish(job)
        if let result {
            logger.info("reprocess finished", metadata: [
                "job_id": "\(job.id)", "model": "\(job.model.name)", "photos": "\(result.photos)", "faces": "\(result.faces)",
                "persons_kept": "\(result.personsKept)", "persons_created": "\(result.personsCreated)",
                "persons_removed": "\(result.personsRemoved)"])
        }
        return result
    }

    /// Photos with a staged result, photos still to come (queued, in flight, or failed with a retry due), and
    /// photos that failed for good.
    private func progress(of jobID: String) async throws -> (analysed: Int, pending: Int, failed: Int) {
        let row = try await database.sql.raw("""
            SELECT
                (SELECT COUNT(*) FROM reprocess_photos WHERE job_id = \(bind: jobID)) AS analysed,
                (SELECT COUNT(*) FROM photos WHERE status IN ('READY', 'PROCESSING')
                    OR (status = 'FAILED' AND next_attempt_at IS NOT NULL AND retry_count <= \(bind: maxRetries))) AS pending,
                (SELECT COUNT(*) FROM photos WHERE status = 'FAILED'
                    AND NOT (next_attempt_at IS NOT NULL AND retry_count <= \(bind: maxRetries))) AS failed
            """).first()!
        return (try row.decode(column: "analysed", as: Int.self), try row.decode(column: "pending", as: Int.self),
                try row.decode(column: "failed", as: Int.self))
    }

    static func runningJob(on db: any SQLDatabase) async throws -> ReprocessJob? {
        guard let row = try await db.raw("SELECT job_id, model FROM reprocess_jobs WHERE status = 'RUNNING' LIMIT 1").first() else {
            return nil
        }
        let name = try row.decode(column: "model", as: String.self)
        guard let model = FaceModel.named(name) else {
            throw PhotoSorterError.conflict("a reprocess job targets an unknown model \"\(name)\"")
        }
        return ReprocessJob(id: try row.decode(column: "job_id", as: String.self), model: model)
    }

    /// Keeps one result of the running job's model for the rebuild; the photo counts as done (PROCESSED) and
    /// keeps its old persons until the job finishes.
    static func stage(_ payload: CallbackPayload, faces: [Embedding], job: ReprocessJob, key: String,
                      on tx: any SQLDatabase) async throws -> CallbackResponse {
        if let remembered = try await IdentityLog.rememberedResponse(for: key, on: tx) { return remembered }
        guard let photo = try await tx.raw("SELECT status FROM photos WHERE id = \(bind: payload.photoID)").first() else {
            throw PhotoSorterError.photoNotFound(payload.photoID)
        }
        let modelVersion = payload.meta?.modelVersion ?? job.model.embedder
        let alreadyStaged = try await tx.raw("""
            SELECT 1 AS one FROM reprocess_photos WHERE job_id = \(bind: job.id) AND photo_id = \(bind: payload.photoID)
            """).first() != nil
        let response = CallbackResponse(ok: true, createdPersonIDs: [], personIDs: [])
        let status = try photo.decode(column: "status", as: String.self)
        if alreadyStaged || status == PhotoStatus.processed.rawValue {
            return response
        }
        try await tx.raw("""
            INSERT INTO reprocess_photos (job_id, photo_id, width, height, quarter_turns, face_count, model_version)
            VALUES (\(bind: job.id), \(bind: payload.photoID), \(bind: payload.width), \(bind: payload.height),
                \(bind: payload.quarterTurns), \(bind: faces.count), \(bind: modelVersion))
            """).run()
        for (index, (face, detection)) in zip(faces, payload.detections).enumerated() {
            try await tx.raw("""
                INSERT INTO reprocess_faces (job_id, photo_id, face_index, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2,
                    confidence, model_version, embedding_norm)
                VALUES (\(bind: job.id), \(bind: payload.photoID), \(bind: index), \(bind: EmbeddingCodec.encode(face)),
                    \(bind: detection.bbox.x1), \(bind: detection.bbox.y1), \(bind: detection.bbox.x2), \(bind: detection.bbox.y2),
                    \(bind: detection.confidence ?? 0), \(bind: modelVersion), \(bind: detection.embeddingNorm))
                """).run()
        }
        try await MediaStore.store(payload, replacingFaces: false, on: tx)
        try await PhotosTable.markStaged(payload.photoID, now: nowMs(), on: tx)
        try await IdentityLog.remember(response, key: key, photoID: payload.photoID, on: tx)
        return response
    }
}

extension ReprocessService {
    /// Replaces every face and person assignment with the staged results of `job` (`IdentityService.replaceAll`).
    /// Each new face takes the place of the old face of its photo it overlaps most (box IoU ≥ 0.5): its person, its
    /// confirmation and its "not this person" marks. Then `Reclustering` places the new faces under those
    /// corrections, photos in the order their faces were first committed, so the same model on the same photos
    /// gives the same persons, and each new cluster keeps the old id it shares the most faces with. Nil when the job
    /// is no longer running (another instance finished it).
    func finish(_ job: ReprocessJob) async throws -> ReprocessResult? {
        try await identity.replaceAll { tx in
            guard let current = try await Self.runningJob(on: tx), current.id == job.id else { return nil }
            return try await self.rebuild(job, on: tx)
        }
    }

    private struct StagedPhoto {
        let id: Int64
        let width: Int?
        let height: Int?
        let quarterTurns: Int?
        let modelVersion: String
        var faces: [StagedFace] = []
    }

    private struct StagedFace {
        let embedding: Embedding
        let bbox: BoundingBox
        let confidence: Double
        let embeddingNorm: Double?
    }

    /// An old face, for carrying its person and corrections over to the new face that replaces it.
    private struct OldFace {
        let id: Int64
        let bbox: BoundingBox
        let person: Int64?
        let look: Int64?
        let confirmed: Bool
    }

    private func rebuild(_ job: ReprocessJob, on tx: any SQLDatabase) async throws -> ReprocessResult {
        var photos: [Int64: StagedPhoto] = [:]
        for row in try await tx.raw("""
            SELECT photo_id, width, height, quarter_turns, model_version FROM reprocess_photos WHERE job_id = \(bind: job.id)
            """).all() {
            let id = try row.decode(column: "photo_id", as: Int64.self)
            photos[id] = StagedPhoto(id: id, width: try row.decode(column: "width", as: Int?.self),
                                     height: try row.decode(column: "height", as: Int?.self),
                                     quarterTurns: try row.decode(column: "quarter_turns", as: Int?.self),
                                     modelVersion: try row.decode(column: "model_version", as: String.self))
        }
        for row in try await tx.raw("""
            SELECT photo_id, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence, embedding_norm FROM reprocess_faces
            WHERE job_id = \(bind: job.id) ORDER BY photo_id, face_index
            """).all() {
            let id = try row.decode(column: "photo_id", as: Int64.self)
            photos[id]?.faces.append(StagedFace(
                embedding: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)),
                bbox: try BoundingBox(row: row), confidence: try row.decode(column: "confidence", as: Double.self),
                embeddingNorm: try row.decode(column: "embedding_norm", as: Double?.self)))
        }
        var firstCommit: [Int64: Int64] = [:]
        var oldFaces: [Int64: [OldFace]] = [:]
        for row in try await tx.raw("""
            SELECT id, photo_id, person_id, look_id, confirmed, bbox_x1, bbox_y1, bbox_x2, bbox_y2 FROM embeddings ORDER BY id
            """).all() {
            let photo = try row.decode(column: "photo_id", as: Int64.self)
            let face = OldFace(id: try row.decode(column: "id", as: Int64.self), bbox: try BoundingBox(row: row),
                               person: try row.decode(column: "person_id", as: Int64?.self),
                               look: try row.decode(column: "look_id", as: Int64?.self), confirmed: try row.decode(column: "confirmed", as: Bool.self))
            if firstCommit[photo] == nil { firstCommit[photo] = face.id }
            oldFaces[photo, default: []].append(face)
        }
        let rejections = try await PersonBookkeeping.rejectionsByFace(on: tx)
        let livePersons = Set(try await tx.raw("SELECT id FROM persons WHERE merged_into IS NULL AND face_count > 0").all()
            .map { try $0.decode(column: "id", as: Int64.self) })

        // Replay in first-commit order; photos that had no faces before come last, by id. Each new face stands in
        // for the old face it overlaps most.
        let ordered = photos.values.sorted { (firstCommit[$0.id] ?? .max, $0.id) < (firstCommit[$1.id] ?? .max, $1.id) }
        var faces: [Reclustering.Face] = []
        var vectors: [Embedding] = []
        var staged: [(photo: StagedPhoto, face: StagedFace, faceIndex: Int)] = []
        for photo in ordered {
            let old = oldFaces[photo.id] ?? []
            let replaced = BoundingBox.pairByOverlap(photo.faces.map(\.bbox), with: old.map(\.bbox)).map { $0.map { old[$0] } }
            for (faceIndex, face) in photo.faces.enumerated() {
                let old = replaced[faceIndex]
                faces.append(Reclustering.Face(id: Int64(faces.count), photo: photo.id, person: old?.person,
                                               confirmed: old?.confirmed ?? false, rejected: old.flatMap { rejections[$0.id] } ?? [],
                                               look: old?.look, mayFoundPerson: job.model.mayFoundPerson(embeddingNorm: face.embeddingNorm)))
                vectors.append(face.embedding)
                staged.append((photo, face, faceIndex))
            }
        }
        let outcome = try await Reclustering.run(faces, vectors: vectors, policy: config.identityPolicy(for: job.model),
                                                 retired: try await PersonBookkeeping.retiredIDs(on: tx))

        let now = nowMs()
        try await PhotoPersonsTable.removeAll(on: tx)
        try await FacesTable.removeAll(on: tx)
        let newIDs = try await PersonBookkeeping.insertNewPersons(of: outcome, faces: faces, on: tx)
        var personIDsOfPhoto: [Int64: [Int64]] = [:]
        var started = Set<Int64>()
        for ((photo, face, faceIndex), (reclustered, assignment)) in zip(staged, zip(faces, outcome.assignments)) {
            let person = assignment.person?.id(newIDs: newIDs)
            var createdPerson = false
            if case .new = assignment.person, let person { createdPerson = started.insert(person).inserted }
            let embeddingID = try await FacesTable.insert(FacesTable.NewFace(
                photoID: photo.id, personID: person, lookID: assignment.look, faceIndex: faceIndex, embedding: face.embedding, bbox: face.bbox,
                confidence: face.confidence, similarity: assignment.similarity.map(Double.init), createdPerson: createdPerson,
                suggestedPersonID: nil, modelVersion: photo.modelVersion, confirmed: reclustered.confirmed,
                runnerUpPersonID: assignment.runnerUp?.id(newIDs: newIDs), runnerUpSimilarity: assignment.runnerUpSimilarity.map(Double.init),
                embeddingNorm: face.embeddingNorm),
                now: now, on: tx)
            for rejected in reclustered.rejected {
                try await PersonBookkeeping.reject(face: embeddingID, person: rejected, now: now, on: tx)
            }
            if let person, personIDsOfPhoto[photo.id]?.contains(person) != true { personIDsOfPhoto[photo.id, default: []].append(person) }
        }
        for photo in ordered {
            let personIDs = personIDsOfPhoto[photo.id] ?? []
            try await PhotoPersonsTable.add(photo: photo.id, persons: personIDs, on: tx)
            try await PhotosTable.applyReprocessed(photo.id, width: photo.width, height: photo.height, quarterTurns: photo.quarterTurns,
                                                   faceCount: photo.faces.count, personIDs: personIDs, modelVersion: photo.modelVersion,
                                                   now: now, on: tx)
        }
        // Photos the new model could not analyse keep their status and reason, but no longer show anyone.
        let photosFailed = try await PhotosTable.clearUnreprocessed(jobID: job.id, now: now, on: tx)
        // Faces set aside by the old model no longer compare: a missing photo that returns is analysed again.
        try await ParkedFacesTable.dropAll(on: tx)
        try await PhotosTable.forgetMissingAnalyses(on: tx)
        // Ids no cluster kept become redirects to the person that received most of their faces; a person whose
        // faces all vanished with the old model stays as an empty row (ids are never deleted, so never reused).
        try await PersonBookkeeping.recordMerges(of: outcome, newIDs: newIDs, on: tx)
        let survivors = Set(outcome.assignments.compactMap { $0.person?.id(newIDs: newIDs) })
        try await PersonBookkeeping.refresh(photos: [Int64](), persons: livePersons.union(survivors), on: tx)
        let result = ReprocessResult(photos: ordered.count, faces: faces.count, photosFailed: photosFailed, persons: survivors.count,
                                     personsKept: survivors.count - outcome.newPersonCount, personsCreated: outcome.newPersonCount,
                                     personsRemoved: livePersons.subtracting(survivors).count)
        try await MediaStore.removeOrphanThumbnails(on: tx)
        try await tx.raw("DELETE FROM reprocess_faces WHERE job_id = \(bind: job.id)").run()
        try await tx.raw("DELETE FROM reprocess_photos WHERE job_id = \(bind: job.id)").run()
        try await tx.raw("""
            UPDATE reprocess_jobs SET status = 'COMPLETED', result = \(bind: String(decoding: try JSONEncoder().encode(result), as: UTF8.self)),
                finished_at = \(bind: now) WHERE job_id = \(bind: job.id)
            """).run()
        return result
    }
}
