import Foundation
import PhotoSorterCore
import SQLKit

extension IdentityService {
    /// Replaces every face and person assignment with the staged results of `job`, in one transaction under
    /// the identity lock, and reloads the index from it. Each new face takes the place of the old face of its
    /// photo it overlaps most (box IoU ≥ 0.5): its person, its confirmation and its "not this person" marks. Then
    /// `Reclustering` places the new faces under those corrections, photos in the order their faces were first
    /// committed, so the same model on the same photos gives the same persons, and each new cluster keeps the old
    /// id it shares the most faces with. Nil when the job is no longer running (another instance finished it).
    ///
    /// The index is reloaded inside the transaction, before the commit makes the job COMPLETED, so nobody sees a
    /// finished job with the old persons; if the commit fails, the index is reloaded from what stayed.
    /// Other instances reload theirs at their next commit (the generation changed).
    func finishReprocess(_ job: ReprocessJob) async throws -> ReprocessResult? {
        try await lock.withLock {
            do {
                return try await self.database.transaction { tx -> ReprocessResult? in
                    try await self.lockAcrossInstances(tx)
                    guard let current = try await ReprocessService.runningJob(on: tx), current.id == job.id else { return nil }
                    let result = try await self.rebuild(job, on: tx)
                    _ = try await Self.bumpGeneration(on: tx)
                    try await self.reload(on: tx)
                    return result
                }
            } catch {
                try? await self.reload()
                throw error
            }
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
    }

    /// An old face, for carrying its person and corrections over to the new face that replaces it.
    private struct OldFace {
        let id: Int64
        let bbox: BoundingBox
        let person: Int64
        let confirmed: Bool
    }

    /// Least overlap (IoU) for a new face to take an old face's place.
    static let replacementOverlap = 0.5

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
            SELECT photo_id, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence FROM reprocess_faces
            WHERE job_id = \(bind: job.id) ORDER BY photo_id, face_index
            """).all() {
            let id = try row.decode(column: "photo_id", as: Int64.self)
            photos[id]?.faces.append(StagedFace(
                embedding: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)),
                bbox: try BoundingBox(row: row), confidence: try row.decode(column: "confidence", as: Double.self)))
        }
        var firstCommit: [Int64: Int64] = [:]
        var oldFaces: [Int64: [OldFace]] = [:]
        for row in try await tx.raw("""
            SELECT id, photo_id, person_id, confirmed, bbox_x1, bbox_y1, bbox_x2, bbox_y2 FROM embeddings ORDER BY id
            """).all() {
            let photo = try row.decode(column: "photo_id", as: Int64.self)
            let face = OldFace(id: try row.decode(column: "id", as: Int64.self), bbox: try BoundingBox(row: row),
                               person: try row.decode(column: "person_id", as: Int64.self),
                               confirmed: try row.decode(column: "confirmed", as: Bool.self))
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
        var staged: [(photo: StagedPhoto, face: StagedFace, faceIndex: Int)] = []
        for photo in ordered {
            let replaced = Self.match(photo.faces.map(\.bbox), to: (oldFaces[photo.id] ?? []))
            for (faceIndex, face) in photo.faces.enumerated() {
                let old = replaced[faceIndex]
                faces.append(Reclustering.Face(id: Int64(faces.count), photo: photo.id, embedding: face.embedding, person: old?.person,
                                               confirmed: old?.confirmed ?? false, rejected: old.flatMap { rejections[$0.id] } ?? []))
                staged.append((photo, face, faceIndex))
            }
        }
        let outcome = Reclustering.run(faces, policy: config.identityPolicy(for: job.model),
                                       retired: try await PersonBookkeeping.retiredIDs(on: tx))

        let now = nowMs()
        try await PhotoPersonsTable.removeAll(on: tx)
        try await FacesTable.removeAll(on: tx)
        let newIDs = try await PersonBookkeeping.insertNewPersons(of: outcome, faces: faces, on: tx)
        var personIDsOfPhoto: [Int64: [Int64]] = [:]
        var started = Set<Int64>()
        for ((photo, face, faceIndex), (reclustered, assignment)) in zip(staged, zip(faces, outcome.assignments)) {
            let person = assignment.person.id(newIDs: newIDs)
            var createdPerson = false
            if case .new = assignment.person { createdPerson = started.insert(person).inserted }
            let embeddingID = try await FacesTable.insert(FacesTable.NewFace(
                photoID: photo.id, personID: person, faceIndex: faceIndex, embedding: face.embedding, bbox: face.bbox,
                confidence: face.confidence, similarity: assignment.similarity.map(Double.init), createdPerson: createdPerson,
                suggestedPersonID: nil, modelVersion: photo.modelVersion, confirmed: reclustered.confirmed,
                runnerUpPersonID: assignment.runnerUp?.id(newIDs: newIDs), runnerUpSimilarity: assignment.runnerUpSimilarity.map(Double.init)),
                now: now, on: tx)
            for rejected in reclustered.rejected {
                try await tx.raw("""
                    INSERT INTO face_rejections (embedding_id, person_id, created_at) VALUES (\(bind: embeddingID), \(bind: rejected), \(bind: now))
                    """).run()
            }
            if personIDsOfPhoto[photo.id]?.contains(person) != true { personIDsOfPhoto[photo.id, default: []].append(person) }
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
        // Ids no cluster kept become redirects to the person that received most of their faces; a person whose
        // faces all vanished with the old model stays as an empty row (ids are never deleted, so never reused).
        try await PersonBookkeeping.recordMerges(of: outcome, newIDs: newIDs, on: tx)
        let survivors = Set(outcome.assignments.map { $0.person.id(newIDs: newIDs) })
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

    /// For each new box, the old face it replaces: pairs by largest overlap first, each old face used once, IoU at
    /// least `replacementOverlap`.
    private static func match(_ boxes: [BoundingBox], to old: [OldFace]) -> [OldFace?] {
        var pairs: [(new: Int, old: Int, overlap: Double)] = []
        for (n, box) in boxes.enumerated() {
            for (o, face) in old.enumerated() {
                let overlap = box.intersectionOverUnion(with: face.bbox)
                if overlap >= replacementOverlap { pairs.append((n, o, overlap)) }
            }
        }
        pairs.sort { ($0.overlap, -$0.new, -$0.old) > ($1.overlap, -$1.new, -$1.old) }
        var result = [OldFace?](repeating: nil, count: boxes.count)
        var used = Set<Int>()
        for pair in pairs where result[pair.new] == nil && !used.contains(pair.old) {
            result[pair.new] = old[pair.old]
            used.insert(pair.old)
        }
        return result
    }
}
