import Foundation
import PhotoSorterCore
import SQLKit

/// A face that changed person in a correction or a re-cluster.
struct FaceMove: Sendable {
    let embeddingID: Int64
    let face: Embedding
    let from: Int64
    let to: Int64
}

extension IdentityService {
    /// Runs a change of persons or faces (a correction, a re-cluster) in one transaction, serialised with every
    /// commit (this instance's lock and the cross-instance lock), against an index that is up to date. `body`
    /// returns its result and the faces it moved; once the transaction committed, the index takes the moves (on
    /// top of its current state, like a commit's faces). Other instances learn the moves from the change log
    /// (`identity_changes`) at their next catch-up; a bulk change (more than `bulkChange` moves) bumps the
    /// generation instead, and they reload. A failed body changes nothing.
    func change<T: Sendable>(
        _ body: @escaping @Sendable (_ tx: any SQLDatabase, _ index: IdentityIndex, _ model: FaceModel?) async throws -> (T, [FaceMove])
    ) async throws -> T {
        try await lock.withLock {
            let (result, moves, caughtUp, model, logged) = try await self.database.transaction { tx in
                let (snapshot, caughtUp) = try await self.catchUp(on: tx)
                let (result, moves) = try await body(tx, snapshot.index, snapshot.model)
                let real = moves.filter { $0.from != $0.to }
                let logged: Logged
                if real.count > Self.bulkChange {
                    logged = .generation(try await Self.bumpGeneration(on: tx))
                } else {
                    logged = .changes(try await Self.log(real.map { IndexChange(move: $0) }, on: tx))
                }
                return (result, real, caughtUp, snapshot.model, logged)
            }
            self.apply(caughtUp, model: model)
            self.state.withLockedValue { state in
                for move in moves {
                    state.index.remove(move.face, from: move.from)
                    state.index.add(move.face, to: move.to)
                    state.touch(move.from)
                    state.touch(move.to)
                }
                switch logged {
                case .generation(let generation): state.generation = generation
                case .changes(let lastSeq): if let lastSeq { state.lastChangeSeq = lastSeq }
                }
            }
            return result
        }
    }

    /// Moves beyond which other instances reload the whole index rather than replay a change log this long.
    static let bulkChange = 2000

    private enum Logged: Sendable {
        case generation(Int64)
        /// The last sequence number written, nil when there was nothing to log.
        case changes(Int64?)
    }

    /// Appends to the change log; call under the cross-instance lock (like embedding ids, sequence numbers must
    /// be allocated in commit order for "greater than the last seen" to be complete). Returns the last sequence.
    static func log(_ changes: [IndexChange], on tx: any SQLDatabase) async throws -> Int64? {
        var last: Int64?
        let now = nowMs()
        for change in changes {
            last = try await tx.raw("""
                INSERT INTO identity_changes (embedding_id, from_person, to_person, vector, created_at)
                VALUES (\(bind: change.embeddingID), \(bind: change.from), \(bind: change.to), \(bind: EmbeddingCodec.encode(change.face)),
                    \(bind: now)) RETURNING seq
                """).first()!.decode(column: "seq", as: Int64.self)
        }
        return last
    }

    /// Brings this instance's index up to date now (after faces were removed outside a commit).
    func catchUpNow() async throws {
        try await lock.withLock {
            let (caughtUp, model) = try await self.database.transaction { tx in
                let (snapshot, caughtUp) = try await self.catchUp(on: tx)
                return (caughtUp, snapshot.model)
            }
            self.apply(caughtUp, model: model)
        }
    }
}

extension IdentityService.IndexChange {
    /// A correction's or re-cluster's move, as the change log records it.
    init(move: FaceMove) {
        self.init(embeddingID: move.embeddingID, from: move.from, to: move.to, face: move.face)
    }
}

/// Keeps the derived person data right after faces moved: `photo_persons`, `photos.person_ids`, and each
/// person's counts and representative photo.
enum PersonBookkeeping {
    /// Recomputes the derived rows of `photos` and `persons` from `embeddings`, inside `tx`.
    static func refresh(photos: some Collection<Int64>, persons: some Collection<Int64>, on tx: any SQLDatabase) async throws {
        let now = nowMs()
        for photo in Set(photos).sorted() {
            var personIDs: [Int64] = []
            for row in try await tx.raw("SELECT person_id FROM embeddings WHERE photo_id = \(bind: photo) ORDER BY face_index").all() {
                let person = try row.decode(column: "person_id", as: Int64.self)
                if !personIDs.contains(person) { personIDs.append(person) }
            }
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
