import PhotoSorterCore
import SQLKit

/// Keeps the derived person data right after faces moved: `photo_persons`, `photos.person_ids`, and each
/// person's counts and representative photo.
enum PersonBookkeeping {
    /// Recomputes the derived rows of `photos` and `persons` from `embeddings`, inside `tx`.
    static func refresh(photos: some Collection<Int64>, persons: some Collection<Int64>, on tx: any SQLDatabase) async throws {
        let now = nowMs()
        for photo in Set(photos).sorted() {
            let personIDs = try await FacesTable.persons(ofPhoto: photo, on: tx)
            try await PhotoPersonsTable.replace(photo: photo, persons: personIDs, on: tx)
            try await PhotosTable.setPersons(photo, personIDs, now: now, on: tx)
        }
        for person in Set(persons).sorted() { try await PersonsTable.recount(person, now: now, on: tx) }
    }

    /// Turns `absorbed` into redirects to `survivor`: no faces, `merged_into` set, and every older redirect to
    /// them now points at `survivor` too. The survivor takes the first absorbed name when it has none. Rejections
    /// and runner-ups move to the survivor (a face that is not an absorbed person is not the survivor either).
    static func redirect(_ absorbed: [Int64], to survivor: Int64, on tx: any SQLDatabase) async throws {
        guard !absorbed.isEmpty else { return }
        let now = nowMs()
        try await tx.raw("""
            INSERT INTO face_rejections (embedding_id, person_id, created_at)
            SELECT DISTINCT embedding_id, \(bind: survivor), \(bind: now) FROM face_rejections r
            WHERE r.person_id IN (\(binds: absorbed)) AND NOT EXISTS
                (SELECT 1 FROM face_rejections s WHERE s.embedding_id = r.embedding_id AND s.person_id = \(bind: survivor))
            """).run()
        try await tx.raw("DELETE FROM face_rejections WHERE person_id IN (\(binds: absorbed))").run()
        try await FacesTable.redirectRunnerUps(from: absorbed, to: survivor, on: tx)
        if try await tx.raw("SELECT display_name FROM persons WHERE id = \(bind: survivor)").first()?
            .decode(column: "display_name", as: String?.self) == nil,
           let name = try await tx.raw("""
                SELECT display_name FROM persons WHERE id IN (\(binds: absorbed)) AND display_name IS NOT NULL ORDER BY id LIMIT 1
                """).first()?.decode(column: "display_name", as: String.self) {
            try await PersonsTable.rename(survivor, to: name, now: now, on: tx)
        }
        try await PersonsTable.redirect(absorbed, to: survivor, now: now, on: tx)
    }

    /// Records that a face is not a person (cannot-link), once.
    static func reject(face: Int64, person: Int64, now: Int64 = nowMs(), on tx: any SQLDatabase) async throws {
        try await tx.raw("""
            INSERT INTO face_rejections (embedding_id, person_id, created_at)
            SELECT \(bind: face), \(bind: person), \(bind: now)
            WHERE NOT EXISTS (SELECT 1 FROM face_rejections WHERE embedding_id = \(bind: face) AND person_id = \(bind: person))
            """).run()
    }

    // MARK: Writing a re-clustering (`recluster` and the end of a reprocess)

    /// Ids of earlier merges, never given out again.
    static func retiredIDs(on tx: any SQLDatabase) async throws -> Set<Int64> {
        Set(try await tx.raw("SELECT id FROM persons WHERE merged_into IS NOT NULL").all().map { try $0.decode(column: "id", as: Int64.self) })
    }

    /// Every "not this person", by face.
    static func rejectionsByFace(on tx: any SQLDatabase) async throws -> [Int64: Set<Int64>] {
        var rejected: [Int64: Set<Int64>] = [:]
        for row in try await tx.raw("SELECT embedding_id, person_id FROM face_rejections").all() {
            rejected[try row.decode(column: "embedding_id", as: Int64.self), default: []].insert(try row.decode(column: "person_id", as: Int64.self))
        }
        return rejected
    }

    /// Inserts the new persons of `outcome`, each shown first by the photo of its first face (`faces` is the
    /// re-clustering's input); returns their ids, in the order `Reclustering.Person.new(n)` numbers them.
    static func insertNewPersons(of outcome: Reclustering.Outcome, faces: [Reclustering.Face], on tx: any SQLDatabase) async throws -> [Int64] {
        var firstPhoto = [Int64?](repeating: nil, count: outcome.newPersonCount)
        for (face, assignment) in zip(faces, outcome.assignments) {
            if case .new(let n) = assignment.person, firstPhoto[n] == nil { firstPhoto[n] = face.photo }
        }
        var ids: [Int64] = []
        for photo in firstPhoto { ids.append(try await PersonsTable.insert(representativePhoto: photo, on: tx)) }
        return ids
    }

    /// Makes every id `outcome` no longer uses a redirect to the person that received most of its faces.
    static func recordMerges(of outcome: Reclustering.Outcome, newIDs: [Int64], on tx: any SQLDatabase) async throws {
        for (from, into) in outcome.merged { try await redirect([from], to: into.id(newIDs: newIDs), on: tx) }
    }
}

extension Reclustering.Person {
    /// The stored id: an existing one, or the id `PersonBookkeeping.insertNewPersons` gave the n-th new person.
    func id(newIDs: [Int64]) -> Int64 {
        switch self {
        case .existing(let id): id
        case .new(let n): newIDs[n]
        }
    }
}
