import Foundation
import Logging
import SQLKit

/// Turns the names XMP face regions gave faces (`xmp_face_names`, written with each analysis) into identity, with
/// the corrections' own rules (README "Face names from XMP"):
/// - the face goes, confirmed, to the person of that name (names compare case-insensitively);
/// - a face whose person has no name yet gives that person the name, so the rest of the person's photos are named
///   with it; when a person already has the name, the two are merged (one name is one person);
/// - a face whose person has another name moves alone, to the person of the name or to a new one.
///
/// A name never overrides a user: a face the user marked "not this person" for the named person, a face the user
/// confirmed elsewhere, and a face whose named-from-XMP person the user renamed are conflicts, counted and listed
/// (`GET /xmp/names`), and nothing changes. One name at a time, each in the corrections' transactions; the rows
/// stay pending until settled, so names read before a crash are applied at the next start.
public actor XMPNameImport {
    private let database: PhotoSorterDatabase
    private let people: PeopleService
    private let identity: IdentityService
    private let logger: Logger
    private var running: Task<Void, Never>?
    private var again = false

    init(database: PhotoSorterDatabase, people: PeopleService, identity: IdentityService, logger: Logger) {
        self.database = database
        self.people = people
        self.identity = identity
        self.logger = logger
    }

    /// Applies the pending names in the background (a run in progress goes round once more).
    public func wake() {
        guard running == nil else {
            again = true
            return
        }
        running = Task { await self.drainLoop() }
    }

    /// Returns once every name recorded so far is settled.
    public func drain() async {
        wake()
        while let task = running { await task.value }
    }

    /// How many names are pending, applied and in conflict, with the conflicts (oldest first, at most `limit`).
    public func summary(conflictLimit limit: Int = 100) async throws -> XMPNamesSummary {
        let db = database.sql
        let counts = try await XMPFaceNamesTable.counts(on: db)
        let conflicts = try await XMPFaceNamesTable.conflicts(limit: limit, on: db)
        return XMPNamesSummary(pending: counts.pending, applied: counts.applied, conflicts: counts.conflicts, conflictList: conflicts)
    }

    private func drainLoop() async {
        repeat {
            again = false
            do {
                while case let batch = try await XMPFaceNamesTable.pending(limit: 200, on: database.sql), !batch.isEmpty {
                    for name in batch { try await settle(name) }
                }
            } catch {
                logger.error("applying names from XMP failed; they stay pending", metadata: ["error": "\(error)"])
            }
        } while again
        running = nil
    }

    /// What one name does; a refusal of the corrections (two faces of one photo, a hidden person) is a conflict.
    private func settle(_ name: XMPFaceNamesTable.Pending) async throws {
        let outcome: (XMPFaceNamesTable.Outcome, String?)
        do {
            outcome = try await apply(name)
        } catch let error as PhotoSorterError {
            outcome = (.conflict, error.reason)
        }
        try await XMPFaceNamesTable.settle(name.id, outcome.0, detail: outcome.1, on: database.sql)
        if outcome.0 == .conflict {
            logger.notice("name from XMP not applied", metadata: ["face_id": "\(name.face)", "name": "\(name.name)", "reason": "\(outcome.1 ?? "")"])
        }
    }

    private struct Face {
        /// Nil: an unsorted face.
        let person: Int64?
        let confirmed: Bool
        let namedFromXMP: Bool
        let personName: String?
        let personNameFromXMP: Bool
    }

    private func apply(_ name: XMPFaceNamesTable.Pending) async throws -> (XMPFaceNamesTable.Outcome, String?) {
        let db = database.sql
        guard let row = try await db.raw("""
            SELECT e.person_id, e.confirmed, e.named_from_xmp, p.display_name, p.name_from_xmp
            FROM embeddings e LEFT JOIN persons p ON p.id = e.person_id WHERE e.id = \(bind: name.face)
            """).first() else { return (.conflict, "the face is gone") }
        let face = Face(person: try row.decode(column: "person_id", as: Int64?.self), confirmed: try row.decode(column: "confirmed", as: Bool.self),
                        namedFromXMP: try row.decode(column: "named_from_xmp", as: Bool.self),
                        personName: try row.decode(column: "display_name", as: String?.self),
                        personNameFromXMP: try row.decode(column: "name_from_xmp", as: Bool?.self) ?? false)
        let named = try await db.raw("""
            SELECT id FROM persons WHERE merged_into IS NULL AND LOWER(display_name) = LOWER(\(bind: name.name)) ORDER BY id LIMIT 1
            """).first()?.decode(column: "id", as: Int64.self)
        let sameName = face.personName.map { $0.lowercased() == name.name.lowercased() } ?? false
        if let named, try await db.raw("""
            SELECT 1 AS x FROM face_rejections WHERE embedding_id = \(bind: name.face) AND person_id = \(bind: named)
            """).first() != nil {
            return (.conflict, "the face was marked as not \(name.name) (person \(named))")
        }
        if face.confirmed && !face.namedFromXMP && !sameName {
            return (.conflict, "the face was confirmed as person \(face.person.map(String.init) ?? "none")\(face.personName.map { " (\($0))" } ?? "")")
        }
        if face.namedFromXMP && !face.personNameFromXMP && !sameName {
            return (.conflict, "the face's person \(face.person.map(String.init) ?? "none") was renamed to \(face.personName.map { "\"\($0)\"" } ?? "no name")")
        }
        // Where the face goes, through the corrections' own rules; the person that takes the name gets it below.
        // An unsorted face (no person) goes to the named person, or to a new one that takes the name.
        let target: Int64
        var takesName = false
        switch (named, face.person) {
        case let (named?, person?) where named == person:
            target = person
        case let (nil, person?) where face.personName == nil:
            target = person
            takesName = true
        case (nil, _):
            target = try await people.move(MoveRequest(faceIDs: [name.face], toPersonID: nil)).personID
            takesName = true
        case let (named?, person):
            target = named
            if let person, face.personName == nil, (try? await people.merge(MergeRequest(personIDs: [person], into: named))) != nil {
                break  // The face's person received the name too: one name, one person.
            }
            _ = try await people.move(MoveRequest(faceIDs: [name.face], toPersonID: named))
        }
        try await identity.change { [takesName] tx, _, _ in
            if takesName { try await PersonsTable.rename(target, to: name.name, fromXMP: true, on: tx) }
            try await FacesTable.markNamedFromXMP(name.face, on: tx)
            return ((), [])
        }
        logger.info("name from XMP applied", metadata: ["face_id": "\(name.face)", "name": "\(name.name)", "person_id": "\(target)"])
        return (.applied, nil)
    }
}
