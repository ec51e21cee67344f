import Foundation
import PhotoSorterCore
import SQLKit

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

extension IdentityService {
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
        let prepared = try await reclusterPlan(model: try await storedModel(on: database.sql), on: database.sql)
        let unchangedWhileComputing = try await Self.libraryMarks(on: database.sql) == before
        return try await change { tx, _, model in
            let plan: ReclusterPlan
            if unchangedWhileComputing, prepared.model == model, try await Self.libraryMarks(on: tx) == before {
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
            var moves: [FaceMove] = []
            var photos = Set<Int64>(), persons = Set<Int64>()
            for (stored, assignment) in zip(faces, outcome.assignments) {
                let person = assignment.person.id(newIDs: newIDs)
                let similarity = assignment.similarity.map(Double.init)
                let runnerUp = assignment.runnerUp?.id(newIDs: newIDs)
                let runnerUpSimilarity = assignment.runnerUpSimilarity.map(Double.init)
                let moved = person != stored.person
                if moved {
                    moves.append(FaceMove(embeddingID: stored.face.id, face: stored.face.embedding, from: stored.person, to: person))
                    photos.insert(stored.face.photo)
                    persons.formUnion([stored.person, person])
                }
                // A confirmed face keeps the similarity it had; only the rule's own decisions are rewritten.
                let newSimilarity = stored.face.confirmed ? stored.similarity : similarity
                guard moved || newSimilarity != stored.similarity || runnerUp != stored.runnerUp
                    || runnerUpSimilarity != stored.runnerUpSimilarity else { continue }
                try await FacesTable.reassign(stored.face.id, to: person, similarity: newSimilarity, runnerUp: runnerUp,
                                              runnerUpSimilarity: runnerUpSimilarity, on: tx)
            }
            try await PersonBookkeeping.refresh(photos: photos, persons: persons, on: tx)
            try await PersonBookkeeping.recordMerges(of: outcome, newIDs: newIDs, on: tx)
            let livePersons = Set(outcome.assignments.map(\.person))
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
        let outcome: Reclustering.Outcome?
    }

    private func reclusterPlan(model: FaceModel?, on db: any SQLDatabase) async throws -> ReclusterPlan {
        let faces = try await Self.facesForRecluster(on: db)
        guard let model, !faces.isEmpty else { return ReclusterPlan(model: model, faces: faces, outcome: nil) }
        let outcome = Reclustering.run(faces.map(\.face), policy: config.identityPolicy(for: model),
                                       retired: try await PersonBookkeeping.retiredIDs(on: db))
        return ReclusterPlan(model: model, faces: faces, outcome: outcome)
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
        let person: Int64
        let similarity: Double?
        let runnerUp: Int64?
        let runnerUpSimilarity: Double?
    }

    /// Every face with its constraints, photos in the order their faces were first committed.
    private static func facesForRecluster(on tx: any SQLDatabase) async throws -> [StoredFace] {
        let rejected = try await PersonBookkeeping.rejectionsByFace(on: tx)
        return try await tx.raw("""
            SELECT e.id, e.photo_id, e.person_id, e.vector, e.confirmed, e.similarity, e.runner_up_person_id, e.runner_up_similarity
            FROM embeddings e JOIN (SELECT photo_id, MIN(id) AS first_id FROM embeddings GROUP BY photo_id) f ON f.photo_id = e.photo_id
            ORDER BY f.first_id, e.face_index
            """).all().map { row in
            let id = try row.decode(column: "id", as: Int64.self), person = try row.decode(column: "person_id", as: Int64.self)
            return StoredFace(
                face: Reclustering.Face(
                    id: id, photo: try row.decode(column: "photo_id", as: Int64.self),
                    embedding: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)),
                    person: person, confirmed: try row.decode(column: "confirmed", as: Bool.self), rejected: rejected[id] ?? []),
                person: person,
                similarity: try row.decode(column: "similarity", as: Double?.self),
                runnerUp: try row.decode(column: "runner_up_person_id", as: Int64?.self),
                runnerUpSimilarity: try row.decode(column: "runner_up_similarity", as: Double?.self))
        }
    }
}
