import Foundation
import PhotoSorterCore
import SQLKit

extension IdentityService {
    /// Replaces every face and person assignment with the staged results of `job`, in one transaction under
    /// the identity lock, and reloads the index from it. Photos are replayed in the order their faces were first
    /// committed, so the same model on the same photos gives the same persons; each new group keeps the old id
    /// it shares the most photos with (`LibraryRebuild`). Nil when the job is no longer running (another
    /// instance finished it).
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
        let modelVersion: String
        var faces: [StagedFace] = []
    }

    private struct StagedFace {
        let embedding: Embedding
        let bbox: [Int]
        let confidence: Double
    }

    private func rebuild(_ job: ReprocessJob, on tx: any SQLDatabase) async throws -> ReprocessResult {
        var photos: [Int64: StagedPhoto] = [:]
        for row in try await tx.raw("""
            SELECT photo_id, width, height, model_version FROM reprocess_photos WHERE job_id = \(bind: job.id)
            """).all() {
            let id = try row.decode(column: "photo_id", as: Int64.self)
            photos[id] = StagedPhoto(id: id, width: try row.decode(column: "width", as: Int?.self),
                                     height: try row.decode(column: "height", as: Int?.self),
                                     modelVersion: try row.decode(column: "model_version", as: String.self))
        }
        for row in try await tx.raw("""
            SELECT photo_id, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence FROM reprocess_faces
            WHERE job_id = \(bind: job.id) ORDER BY photo_id, face_index
            """).all() {
            let id = try row.decode(column: "photo_id", as: Int64.self)
            photos[id]?.faces.append(StagedFace(
                embedding: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)),
                bbox: try ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"].map { try row.decode(column: $0, as: Int.self) },
                confidence: try row.decode(column: "confidence", as: Double.self)))
        }
        var firstCommit: [Int64: Int64] = [:]
        for row in try await tx.raw("SELECT photo_id, MIN(id) AS first_id FROM embeddings GROUP BY photo_id").all() {
            firstCommit[try row.decode(column: "photo_id", as: Int64.self)] = try row.decode(column: "first_id", as: Int64.self)
        }
        var oldPersonsByPhoto: [Int64: [Int64]] = [:]
        for row in try await tx.raw("SELECT photo_id, person_id FROM photo_persons").all() {
            oldPersonsByPhoto[try row.decode(column: "photo_id", as: Int64.self), default: []]
                .append(try row.decode(column: "person_id", as: Int64.self))
        }
        let oldPersons = Set(try await tx.raw("SELECT id FROM persons").all().map { try $0.decode(column: "id", as: Int64.self) })

        // Replay in first-commit order; photos that had no faces before come last, by id.
        let ordered = photos.values.sorted { (firstCommit[$0.id] ?? .max, $0.id) < (firstCommit[$1.id] ?? .max, $1.id) }
        let (assignments, clusterCount) = LibraryRebuild.cluster(
            ordered.map { LibraryRebuild.Photo(id: $0.id, faces: $0.faces.map(\.embedding)) },
            policy: config.identityPolicy(for: job.model))
        var clusterPhotos = [[Int64]](repeating: [], count: clusterCount)
        for (photo, photoAssignments) in zip(ordered, assignments) {
            for cluster in Set(photoAssignments.map(\.cluster)) { clusterPhotos[cluster].append(photo.id) }
        }
        let kept = LibraryRebuild.keepIDs(clusterPhotos: clusterPhotos.map { Set($0) }, oldPersonsByPhoto: oldPersonsByPhoto)

        let now = nowMs()
        try await tx.raw("DELETE FROM photo_persons").run()
        try await tx.raw("DELETE FROM embeddings").run()
        var personOfCluster: [Int64] = []
        for cluster in 0..<clusterCount {
            let representative = clusterPhotos[cluster][0]
            if let person = kept[cluster] {
                try await tx.raw("""
                    UPDATE persons SET representative_photo_id = \(bind: representative), updated_at = \(bind: now) WHERE id = \(bind: person)
                    """).run()
                personOfCluster.append(person)
            } else {
                personOfCluster.append(try await tx.raw("""
                    INSERT INTO persons (display_name, face_count, photo_count, representative_photo_id, created_at, updated_at)
                    VALUES (NULL, 0, 0, \(bind: representative), \(bind: now), \(bind: now)) RETURNING id
                    """).first()!.decode(column: "id", as: Int64.self))
            }
        }
        // An old id no group kept becomes a redirect to the person that now shows most of its photos (ids are never
        // deleted, so never reused); one whose photos show nobody now stays as an empty person.
        let removed = oldPersons.subtracting(kept.values).sorted()
        var newPersonsOfPhoto: [Int64: Set<Int64>] = [:]
        for (photo, photoAssignments) in zip(ordered, assignments) {
            newPersonsOfPhoto[photo.id] = Set(photoAssignments.map { personOfCluster[$0.cluster] })
        }
        var photosOfRemoved: [Int64: [Int64]] = [:]
        for (photo, persons) in oldPersonsByPhoto {
            for person in persons where !kept.values.contains(person) { photosOfRemoved[person, default: []].append(photo) }
        }
        for person in removed {
            var shared: [Int64: Int] = [:]
            for photo in photosOfRemoved[person] ?? [] {
                for target in newPersonsOfPhoto[photo] ?? [] { shared[target, default: 0] += 1 }
            }
            if let target = shared.max(by: { ($0.value, -$0.key) < ($1.value, -$1.key) })?.key {
                try await PersonBookkeeping.redirect([person], to: target, on: tx)
            } else {
                try await tx.raw("UPDATE persons SET face_count = 0, photo_count = 0, updated_at = \(bind: now) WHERE id = \(bind: person)").run()
            }
        }

        var faceCount = 0
        var facesPerPerson: [Int64: Int] = [:]
        for (photo, photoAssignments) in zip(ordered, assignments) {
            var personIDs: [Int64] = []
            for (faceIndex, (face, assignment)) in zip(photo.faces, photoAssignments).enumerated() {
                let person = personOfCluster[assignment.cluster]
                try await tx.raw("""
                    INSERT INTO embeddings (photo_id, person_id, face_index, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2,
                        confidence, similarity, created_person, suggested_person_id, model_version, created_at)
                    VALUES (\(bind: photo.id), \(bind: person), \(bind: faceIndex), \(bind: EmbeddingCodec.encode(face.embedding)),
                        \(bind: face.bbox[0]), \(bind: face.bbox[1]), \(bind: face.bbox[2]), \(bind: face.bbox[3]),
                        \(bind: face.confidence), \(bind: assignment.similarity.map(Double.init)),
                        \(bind: assignment.createdCluster && kept[assignment.cluster] == nil), \(bind: Int64?.none),
                        \(bind: photo.modelVersion), \(bind: now))
                    """).run()
                facesPerPerson[person, default: 0] += 1
                if !personIDs.contains(person) { personIDs.append(person) }
            }
            faceCount += photo.faces.count
            for person in personIDs {
                try await tx.raw("INSERT INTO photo_persons (photo_id, person_id) VALUES (\(bind: photo.id), \(bind: person))").run()
            }
            try await tx.raw("""
                UPDATE photos SET width = \(bind: photo.width), height = \(bind: photo.height), no_faces = \(bind: photo.faces.isEmpty),
                    face_count = \(bind: photo.faces.count), person_ids = \(bind: String(decoding: try JSONEncoder().encode(personIDs), as: UTF8.self)),
                    model_version = \(bind: photo.modelVersion), updated_at = \(bind: now)
                WHERE id = \(bind: photo.id)
                """).run()
        }
        for (cluster, person) in personOfCluster.enumerated() {
            try await tx.raw("""
                UPDATE persons SET face_count = \(bind: facesPerPerson[person] ?? 0), photo_count = \(bind: clusterPhotos[cluster].count),
                    updated_at = \(bind: now) WHERE id = \(bind: person)
                """).run()
        }
        // Photos the new model could not analyse keep their status and reason, but no longer show anyone.
        let photosFailed = try await tx.raw("""
            UPDATE photos SET face_count = 0, person_ids = '[]', updated_at = \(bind: now)
            WHERE id NOT IN (SELECT photo_id FROM reprocess_photos WHERE job_id = \(bind: job.id)) RETURNING id
            """).all().count
        let result = ReprocessResult(photos: ordered.count, faces: faceCount, photosFailed: photosFailed, persons: clusterCount,
                                     personsKept: kept.count, personsCreated: clusterCount - kept.count, personsRemoved: removed.count)
        try await tx.raw("DELETE FROM reprocess_faces WHERE job_id = \(bind: job.id)").run()
        try await tx.raw("DELETE FROM reprocess_photos WHERE job_id = \(bind: job.id)").run()
        try await tx.raw("""
            UPDATE reprocess_jobs SET status = 'COMPLETED', result = \(bind: String(decoding: try JSONEncoder().encode(result), as: UTF8.self)),
                finished_at = \(bind: now) WHERE job_id = \(bind: job.id)
            """).run()
        return result
    }
}
