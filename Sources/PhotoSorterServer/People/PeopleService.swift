import Foundation
import PhotoSorterCore
import SQLKit

/// People as users see and correct them: listing, a person's faces and photos, the review queue, export, and the
/// corrections — rename, hide, merge, move faces (split), "not this person", confirm. The API and the CLI both
/// call these, so the rules are the same in both.
///
/// Every correction is one transaction through `IdentityService.change` (serialised with ML commits, checked
/// completely before anything is written: a refused request changes nothing) and is stored as a constraint the
/// next re-cluster obeys: a face a user placed is `confirmed` (a merge confirms every face of the persons it
/// joins: must-link); "not this person" is a row in `face_rejections` (cannot-link). An absorbed person stays as
/// a redirect (`merged_into`).
public final class PeopleService: Sendable {
    let database: PhotoSorterDatabase
    let identity: IdentityService
    let reads: ReadQueries
    let config: ServiceConfig

    init(database: PhotoSorterDatabase, identity: IdentityService, reads: ReadQueries, config: ServiceConfig) {
        self.database = database
        self.identity = identity
        self.reads = reads
        self.config = config
    }

    // MARK: Reads

    /// A page of persons, most photos first (then the newest): those `query` matches with at least `minPhotos` photos
    /// or a name, and how many it left out for fewer photos (`belowMinPhotos`; with `query.counts` only). After a
    /// cursor (`query.after`) the page starts at the cursor's place in the `persons_by_photo_count_id` index, whatever
    /// its depth, and nothing is counted; a person added meanwhile is listed at most once (it has the highest id of
    /// its photo count, so it sorts before or after the cursor, and stays there).
    public func list(_ query: PersonListQuery) async throws -> PersonPage {
        guard (1...1000).contains(query.limit), query.offset >= 0 else {
            throw PhotoSorterError.invalidRequest("limit must be 1...1000 and offset at least 0")
        }
        guard query.after == nil || query.offset == 0 else {
            throw PhotoSorterError.invalidQuery("give offset or after, not both")
        }
        guard query.minPhotos >= 1 else {
            throw PhotoSorterError.invalidQuery("min_photos must be at least 1 (1 lists everyone), got \(query.minPhotos)")
        }
        var conditions: [SQLQueryString] = ["merged_into IS NULL", "face_count > 0"]
        switch query.hidden {
        case .false: conditions.append("hidden = \(false)")
        case .true: conditions.append("hidden = \(true)")
        case .any: break
        }
        if query.unnamedOnly { conditions.append("display_name IS NULL") }
        if let name = query.name, !name.isEmpty {
            conditions.append("LOWER(display_name) LIKE \(bind: "%" + name.lowercased() + "%")")
        }
        let filter = conditions.joined(separator: " AND ")
        let shown: SQLQueryString = "(photo_count >= \(bind: query.minPhotos) OR display_name IS NOT NULL)"
        var total: Int?, below: Int?
        if query.after == nil && query.counts {
            let counts = try await database.sql.raw("""
                SELECT COUNT(*) AS n, COUNT(CASE WHEN NOT \(shown) THEN 1 END) AS below FROM persons WHERE \(filter)
                """).first()!
            below = try counts.decode(column: "below", as: Int.self)
            total = try counts.decode(column: "n", as: Int.self) - below!
        }
        let columns: SQLQueryString = "id, display_name, hidden, face_count, photo_count, representative_photo_id, created_at"
        let rows = query.limit + 1
        let pageRows: SQLQueryString
        if let after = query.after {
            // The rest of the cursor's photo count, then the fewer counts: each part is one range of the
            // (photo_count, id) index. One row-value range `(photo_count, id) < (c, i)` is seeked by PostgreSQL, but
            // SQLite seeks only its first column and walks the cursor's whole photo count (20 ms at depth 500,000).
            pageRows = """
                SELECT * FROM (SELECT \(columns) FROM persons WHERE \(filter) AND \(shown) AND photo_count = \(bind: after.photoCount)
                    AND id < \(bind: after.id) ORDER BY id DESC LIMIT \(bind: rows)) AS same_count
                UNION ALL
                SELECT * FROM (SELECT \(columns) FROM persons WHERE \(filter) AND \(shown) AND photo_count < \(bind: after.photoCount)
                    ORDER BY photo_count DESC, id DESC LIMIT \(bind: rows)) AS fewer
                """
        } else {
            pageRows = """
                SELECT \(columns) FROM persons WHERE \(filter) AND \(shown) ORDER BY photo_count DESC, id DESC
                LIMIT \(bind: rows) OFFSET \(bind: query.offset)
                """
        }
        // The page is chosen first and the per-person subqueries run on its rows only: PostgreSQL evaluates a
        // select list for every row an OFFSET skips (821 ms p99 at offset ~50,000 of 100,000 persons otherwise).
        let persons = try await database.sql.raw("""
            SELECT p.id, p.display_name, p.hidden, p.face_count, p.photo_count, p.representative_photo_id, p.created_at,
                \(MediaStore.coverFaceSubquery) AS cover_face_id, \(unsafeRaw: ReadQueries.takenSpanColumns(of: "p.id"))
            FROM (\(pageRows)) p
            ORDER BY p.photo_count DESC, p.id DESC LIMIT \(bind: rows)
            """).all().map { row in
            PersonSummary(personID: try row.decode(column: "id", as: Int64.self),
                          displayName: try row.decode(column: "display_name", as: String?.self),
                          hidden: try row.decode(column: "hidden", as: Bool.self),
                          faceCount: try row.decode(column: "face_count", as: Int.self),
                          photoCount: try row.decode(column: "photo_count", as: Int.self),
                          representativePhotoID: try row.decode(column: "representative_photo_id", as: Int64?.self),
                          createdAt: try row.decode(column: "created_at", as: Int64.self),
                          coverFaceID: try row.decode(column: "cover_face_id", as: Int64?.self),
                          firstTaken: try row.decode(column: "first_taken", as: String?.self),
                          lastTaken: try row.decode(column: "last_taken", as: String?.self))
        }
        let page = Array(persons.prefix(query.limit))
        let more = persons.count > query.limit
        return PersonPage(persons: page, total: total, belowMinPhotos: below,
                          nextOffset: more && query.after == nil ? query.offset + page.count : nil,
                          nextAfter: more ? page.last.map { PersonCursor(photoCount: $0.photoCount, id: $0.personID).description } : nil)
    }

    public func person(_ id: Int64) async throws -> PersonView {
        try await reads.person(id)
    }

    /// A person's faces by face id (a redirect id reads the survivor's).
    public func faces(of person: Int64, afterID: Int64 = 0, limit: Int = 100) async throws -> FacePage {
        guard (1...1000).contains(limit) else { throw PhotoSorterError.invalidRequest("limit must be 1...1000") }
        let id = try await reads.person(person).personID
        let faces = try await Self.faces(where: "e.person_id = \(bind: id) AND e.id > \(bind: afterID)",
                                         orderBy: "e.id", limit: limit + 1, on: database.sql)
        return FacePage(faces: Array(faces.prefix(limit)), nextAfterID: faces.count > limit ? faces[limit - 1].faceID : nil)
    }

    /// A person's photos: `query` with the person as its only person (in id order unless it says otherwise).
    public func photos(of person: Int64, query: PhotoQuery = PhotoQuery()) async throws -> PhotoPage {
        guard (1...1000).contains(query.limit) else { throw PhotoSorterError.invalidRequest("limit must be 1...1000") }
        var query = query
        query.persons = [try await reads.person(person).personID]
        return try await reads.photos(query)
    }

    /// Photos by people, date and order (GET /photos, `photo-sorter photos`).
    public func findPhotos(_ query: PhotoQuery, status: PhotoStatus? = nil) async throws -> PhotoPage {
        try await reads.photos(query, status: status)
    }

    /// Who is in the photos of `ids` (GET /photos/people?ids=).
    public func people(inPhotos ids: [Int64]) async throws -> PeopleInPhotos {
        try await reads.people(inPhotos: ids)
    }

    /// Persons by name or id, as a user types them (`--with "Ann"`, `--with 12`): an id, else the one visible
    /// person with exactly that name (case-insensitive). No match, or several, is refused with the candidates.
    public func resolvePersons(_ references: [String]) async throws -> [Int64] {
        var ids: [Int64] = []
        for reference in references {
            if let id = Int64(reference) {
                ids.append(try await reads.person(id).personID)
                continue
            }
            let matches = try await database.sql.raw("""
                SELECT id FROM persons WHERE LOWER(display_name) = \(bind: reference.lowercased()) AND merged_into IS NULL
                    AND hidden = \(false) AND face_count > 0 ORDER BY id
                """).all().map { try $0.decode(column: "id", as: Int64.self) }
            switch matches.count {
            case 1: ids.append(matches[0])
            case 0: throw PhotoSorterError.invalidRequest("no visible person is named \"\(reference)\" (photo-sorter people list --name lists names)")
            default: throw PhotoSorterError.invalidRequest("\(matches.count) persons are named \"\(reference)\" (ids \(matches)): give the id")
            }
        }
        return ids
    }

    public func face(_ id: Int64) async throws -> FaceView {
        try await Self.face(id, on: database.sql)
    }

    /// The least certain decisions first: faces no user has confirmed, of visible persons, whose similarity to
    /// their person is closest to that of the runner-up (a face that started a person counts the joining
    /// threshold as its similarity), each with the question whose answers change something (`ReviewQuestion`).
    /// A face that is its person's only face, or an unsorted one (no person), is asked about its runner-up, so it
    /// is listed only when it could move there: a visible person without a face in the same photo. A face marked as
    /// not its runner-up is not listed.
    public func review(limit: Int = 20) async throws -> ReviewPage {
        guard (1...500).contains(limit) else { throw PhotoSorterError.invalidRequest("limit must be 1...500") }
        guard let model = identity.model else { return ReviewPage(faces: []) }
        let threshold = Double(config.identityPolicy(for: model).matchThreshold)
        let gap: SQLQueryString = "(COALESCE(e.similarity, \(literal: threshold)) - e.runner_up_similarity)"
        let rows = try await database.sql.raw("""
            SELECT \(Self.faceColumns), p.face_count AS person_face_count FROM \(Self.faceTables)
            WHERE e.confirmed = \(false) AND e.runner_up_similarity IS NOT NULL AND (e.person_id IS NULL OR p.hidden = \(false))
                AND NOT EXISTS (SELECT 1 FROM face_rejections r WHERE r.embedding_id = e.id AND r.person_id = e.runner_up_person_id)
                AND (p.face_count > 1 OR EXISTS (
                    SELECT 1 FROM persons u WHERE u.id = e.runner_up_person_id AND u.hidden = \(false) AND u.merged_into IS NULL
                        AND u.face_count > 0 AND NOT EXISTS (SELECT 1 FROM embeddings o WHERE o.photo_id = e.photo_id AND o.person_id = u.id)))
            ORDER BY \(gap), e.id LIMIT \(bind: limit)
            """).all()
        return ReviewPage(faces: try rows.map { row in
            let face = try Self.faceView(row)
            // A one-face person's face, or an unsorted one, is only listed with a runner-up (the EXISTS above).
            let question = if let person = face.personID, try row.decode(column: "person_face_count", as: Int?.self) ?? 0 > 1 {
                ReviewQuestion(kind: .samePerson, personID: person)
            } else {
                ReviewQuestion(kind: .runnerUp, personID: face.runnerUpPersonID!)
            }
            return ReviewItem(face: face, gap: (face.similarity ?? threshold) - (face.runnerUpSimilarity ?? 0), question: question)
        })
    }

    /// What `photo-sorter export` writes: visible persons with at least `minPhotos` photos — named ones, and unnamed
    /// ones when `includeUnnamed` — each with its photos, most photos first.
    ///
    /// `filter` narrows it like `photo-sorter photos`: only the photos it finds, and when it lists persons, only
    /// their folders (each listed person is written, named or not, whatever its photo count). A person left with
    /// no photo is not written.
    public func exportPersons(minPhotos: Int, includeUnnamed: Bool, filter: PhotoQuery? = nil) async throws -> [ExportPerson] {
        guard minPhotos >= 1 else { throw PhotoSorterError.invalidRequest("min-photos must be at least 1") }
        var selected: Set<Int64>?
        if let filter { selected = try await allPhotoIDs(filter) }
        let listed = filter?.persons ?? []
        let which: SQLQueryString = listed.isEmpty
            ? "merged_into IS NULL AND hidden = \(false) AND photo_count >= \(bind: minPhotos) \(unsafeRaw: includeUnnamed ? "" : "AND display_name IS NOT NULL")"
            : "id IN (\(binds: listed))"
        var persons: [ExportPerson] = []
        for row in try await database.sql.raw("SELECT id, display_name FROM persons WHERE \(which) ORDER BY photo_count DESC, id").all() {
            let id = try row.decode(column: "id", as: Int64.self)
            let photos = try await database.sql.raw("""
                SELECT p.id, p.path FROM photo_persons pp JOIN photos p ON p.id = pp.photo_id WHERE pp.person_id = \(bind: id) ORDER BY pp.photo_id
                """).all().map { ExportPhoto(photoID: try $0.decode(column: "id", as: Int64.self), path: try $0.decode(column: "path", as: String.self)) }
                .filter { selected?.contains($0.photoID) ?? true }
            if selected != nil && photos.isEmpty { continue }
            persons.append(ExportPerson(personID: id, displayName: try row.decode(column: "display_name", as: String?.self), photos: photos))
        }
        return persons
    }

    /// Every photo `query` finds (all its pages).
    private func allPhotoIDs(_ query: PhotoQuery) async throws -> Set<Int64> {
        var query = query
        query.order = .id
        query.after = nil
        query.limit = PhotoQuery.maxLimit
        var ids = Set<Int64>()
        while true {
            let page = try await reads.photos(query)
            ids.formUnion(page.photos.map(\.photoID))
            guard let next = page.nextAfterID else { return ids }
            query.after = PhotoCursor(taken: nil, id: next)
        }
    }

    // MARK: Corrections

    /// Renames and/or hides a person (a redirect id changes the survivor).
    public func update(_ id: Int64, _ update: PersonUpdate) async throws -> PersonView {
        if case .some(.some(let name)) = update.displayName {
            guard !name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, name.count <= 200 else {
                throw PhotoSorterError.invalidRequest("display_name must be 1...200 characters and not blank; send null to clear it")
            }
        }
        return try await identity.change { tx, _, _ in
            let person = try await Self.livePerson(id, on: tx, followRedirect: true)
            let now = nowMs()
            if let name = update.displayName {
                try await PersonsTable.rename(person, to: name?.trimmingCharacters(in: .whitespacesAndNewlines), now: now, on: tx)
            }
            if let hidden = update.hidden { try await PersonsTable.setHidden(person, hidden, now: now, on: tx) }
            return (try await self.reads.person(id, on: tx), [])
        }
    }

    /// Merges persons into one: `into` when given (it may be one of `ids` or not), else the oldest id. Every face
    /// of them is confirmed in the survivor (must-link); the others become redirects.
    public func merge(_ request: MergeRequest) async throws -> MergeResult {
        let ids = request.personIDs + (request.into.map { request.personIDs.contains($0) ? [] : [$0] } ?? [])
        guard Set(ids).count == ids.count else {
            throw PhotoSorterError.invalidRequest("person_ids lists a person twice (a person cannot be merged into itself)")
        }
        guard ids.count >= 2 else {
            throw PhotoSorterError.invalidRequest("a merge needs at least two different persons")
        }
        let survivor = request.into ?? ids.min()!
        let absorbed = ids.filter { $0 != survivor }.sorted()
        return try await identity.change { tx, _, _ in
            for id in ids { try await Self.requireVisiblePerson(id, on: tx, before: "merging") }
            if let row = try await tx.raw("""
                SELECT photo_id FROM embeddings WHERE person_id IN (\(binds: ids))
                GROUP BY photo_id HAVING COUNT(DISTINCT person_id) > 1 ORDER BY photo_id LIMIT 1
                """).first() {
                let photo = try row.decode(column: "photo_id", as: Int64.self)
                throw PhotoSorterError.conflict("photo \(photo) shows more than one of persons \(ids.sorted()): two faces of one photo are "
                    + "two people, so they cannot be merged; move the wrong face first")
            }
            if let row = try await tx.raw("""
                SELECT r.embedding_id, r.person_id FROM face_rejections r JOIN embeddings e ON e.id = r.embedding_id
                WHERE e.person_id IN (\(binds: ids)) AND r.person_id IN (\(binds: ids)) ORDER BY r.embedding_id LIMIT 1
                """).first() {
                throw PhotoSorterError.conflict("face \(try row.decode(column: "embedding_id", as: Int64.self)) was marked as not person "
                    + "\(try row.decode(column: "person_id", as: Int64.self)); move it out before merging")
            }
            var moves: [FaceMove] = []
            var photos = Set<Int64>()
            // Each face keeps its look: the absorbed persons' means stay side by side in the survivor (`IdentityIndex`).
            for row in try await tx.raw("SELECT id, photo_id, person_id, look_id, vector FROM embeddings WHERE person_id IN (\(binds: absorbed))").all() {
                photos.insert(try row.decode(column: "photo_id", as: Int64.self))
                let person = try row.decode(column: "person_id", as: Int64.self)
                let look = try row.decode(column: "look_id", as: Int64?.self)
                moves.append(FaceMove(embeddingID: try row.decode(column: "id", as: Int64.self),
                                      face: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)),
                                      from: person, fromLook: look, to: survivor, toLook: look ?? person))
            }
            try await FacesTable.merge(persons: ids, into: survivor, on: tx)
            try await PersonBookkeeping.redirect(absorbed, to: survivor, on: tx)
            try await PersonBookkeeping.refresh(photos: photos, persons: [survivor], on: tx)
            return (MergeResult(person: try await self.reads.person(survivor, on: tx), merged: absorbed), moves)
        }
    }

    /// Moves faces to a person (or to a new one when `toPersonID` is nil) and confirms them there; each is also
    /// recorded as not the person it left. A person left without faces becomes a redirect to the target.
    public func move(_ request: MoveRequest) async throws -> MoveResult {
        let faceIDs = request.faceIDs
        guard !faceIDs.isEmpty, faceIDs.count <= 10_000 else { throw PhotoSorterError.invalidRequest("face_ids must list 1...10000 faces") }
        guard Set(faceIDs).count == faceIDs.count else { throw PhotoSorterError.invalidRequest("face_ids lists a face twice") }
        return try await identity.change { tx, _, _ in
            let faces = try await Self.storedFaces(faceIDs, on: tx)
            let photos = Dictionary(grouping: faces, by: \.photo)
            if let (photo, _) = photos.first(where: { $0.value.count > 1 }) {
                throw PhotoSorterError.conflict("faces \(photos[photo]!.map(\.id).sorted()) are in the same photo \(photo): two faces of "
                    + "one photo are two people")
            }
            var target = request.toPersonID
            if let person = target {
                try await Self.requireVisiblePerson(person, on: tx, before: "moving faces to it")
                if let row = try await tx.raw("""
                    SELECT id, photo_id FROM embeddings WHERE person_id = \(bind: person) AND photo_id IN (\(binds: Array(photos.keys)))
                        AND id NOT IN (\(binds: faceIDs)) LIMIT 1
                    """).first() {
                    throw PhotoSorterError.conflict("person \(person) already has face \(try row.decode(column: "id", as: Int64.self)) in photo "
                        + "\(try row.decode(column: "photo_id", as: Int64.self)); two faces of one photo are two people")
                }
                if let row = try await tx.raw("""
                    SELECT embedding_id FROM face_rejections WHERE person_id = \(bind: person) AND embedding_id IN (\(binds: faceIDs)) LIMIT 1
                    """).first() {
                    throw PhotoSorterError.conflict("face \(try row.decode(column: "embedding_id", as: Int64.self)) was marked as not person \(person)")
                }
            }
            let created = target == nil
            if target == nil { target = try await PersonsTable.insert(representativePhoto: faces[0].photo, on: tx) }
            let person = target!
            try await FacesTable.move(faceIDs, to: person, on: tx)
            let sources = Set(faces.compactMap(\.person)).subtracting([person])
            try await PersonBookkeeping.refresh(photos: photos.keys, persons: sources.union([person]), on: tx)
            let emptied = try await Self.personsWithoutFaces(sources, on: tx)
            // A face moved out of a person that keeps other faces is not that person (cannot-link), so a re-cluster
            // cannot pull the rest of that person after it.
            for face in faces {
                guard let left = face.person, left != person, !emptied.contains(left) else { continue }
                try await PersonBookkeeping.reject(face: face.id, person: left, on: tx)
            }
            try await PersonBookkeeping.redirect(emptied, to: person, on: tx)
            return (MoveResult(personID: person, createdPerson: created, faceIDs: faceIDs),
                    faces.map { FaceMove(embeddingID: $0.id, face: $0.embedding, from: $0.person, fromLook: $0.look, to: person) })
        }
    }

    /// "Not this person": records the rejection and moves the face where the identity rule puts it without that
    /// person (nor the persons of the photo's other faces, nor any it was rejected from before): its best other
    /// person above the threshold, else a new person. The face is no longer confirmed.
    ///
    /// With `person`, another person than the face's own ("not the runner-up"), the rejection is only recorded:
    /// the face stays where it is, and when `person` was its runner-up it has none any more (the review queue
    /// asks no more about it; a re-cluster never puts it there nor offers it as the runner-up again).
    public func reject(face faceID: Int64, person: Int64? = nil) async throws -> RejectResult {
        try await identity.change { tx, index, model in
            let face = try await Self.storedFaces([faceID], on: tx)[0]
            if let person, person != face.person {
                _ = try await Self.livePerson(person, on: tx, followRedirect: false)
                try await PersonBookkeeping.reject(face: faceID, person: person, on: tx)
                try await FacesTable.dropRunnerUp(person, of: faceID, on: tx)
                return (RejectResult(faceID: faceID, rejectedPersonID: person, personID: face.person, createdPerson: false), [])
            }
            guard let model else { throw PhotoSorterError.conflict("the library holds no faces yet") }
            guard let facePerson = face.person else {
                throw PhotoSorterError.conflict("face \(faceID) is unsorted (in no person): move it to a person, or leave it")
            }
            var excluded = Set(try await tx.raw("SELECT person_id FROM face_rejections WHERE embedding_id = \(bind: faceID)").all()
                .map { try $0.decode(column: "person_id", as: Int64.self) })
            excluded.insert(facePerson)
            for row in try await tx.raw("""
                SELECT person_id FROM embeddings WHERE photo_id = \(bind: face.photo) AND id <> \(bind: faceID) AND person_id IS NOT NULL
                """).all() {
                excluded.insert(try row.decode(column: "person_id", as: Int64.self))
            }
            try await PersonBookkeeping.reject(face: faceID, person: facePerson, on: tx)
            var withoutFace = index
            withoutFace.remove(face.embedding, from: facePerson, look: face.look)
            let resolution = IdentityResolver(policy: self.config.identityPolicy(for: model))
                .resolveWithRunnerUps([face.embedding], against: withoutFace, excluded: [excluded])[0]
            // Nil: an unsure face that matches no other person stays unsorted, as it would have arrived (it starts
            // no person: `FaceModel.unsureBelowNorm`).
            let target: Int64?
            var similarity: Double?
            var created = false
            switch resolution.identity {
            case .existing(let person, let score):
                target = person
                similarity = Double(score)
            case .new where model.mayFoundPerson(embeddingNorm: face.embeddingNorm):
                target = try await PersonsTable.insert(representativePhoto: face.photo, on: tx)
                created = true
            case .new:
                target = nil
            }
            let look = resolution.look == target ? nil : resolution.look
            try await FacesTable.replace(faceID, to: target, look: look, similarity: similarity, runnerUp: resolution.runnerUp, on: tx)
            try await PersonBookkeeping.refresh(photos: [face.photo], persons: [facePerson, target].compactMap { $0 }, on: tx)
            try await Self.clearRunnerUps(to: [facePerson], on: tx)
            return (RejectResult(faceID: faceID, rejectedPersonID: facePerson, personID: target, createdPerson: created),
                    [FaceMove(embeddingID: face.id, face: face.embedding, from: face.person, fromLook: face.look, to: target, toLook: look)])
        }
    }

    /// Confirms that a face is its person (it never moves by itself again). An unsorted face has none to confirm.
    public func confirm(face faceID: Int64) async throws -> FaceView {
        try await identity.change { tx, _, _ in
            guard try await Self.storedFaces([faceID], on: tx)[0].person != nil else {
                throw PhotoSorterError.conflict("face \(faceID) is unsorted (in no person): move it to a person to place it")
            }
            try await FacesTable.confirm(faceID, on: tx)
            return (try await Self.face(faceID, on: tx), [])
        }
    }

    // MARK: Helpers

    struct StoredFace {
        let id: Int64
        let photo: Int64
        /// Nil: an unsorted face.
        let person: Int64?
        /// Nil: the person's own look.
        let look: Int64?
        let embedding: Embedding
        /// The embedder's output length before normalising (nil for faces stored before it was recorded).
        let embeddingNorm: Double?
    }

    /// The faces `ids`, in that order; 404 naming the first that does not exist.
    static func storedFaces(_ ids: [Int64], on tx: any SQLDatabase) async throws -> [StoredFace] {
        var byID: [Int64: StoredFace] = [:]
        for row in try await tx.raw("SELECT id, photo_id, person_id, look_id, vector, embedding_norm FROM embeddings WHERE id IN (\(binds: ids))").all() {
            let id = try row.decode(column: "id", as: Int64.self)
            byID[id] = StoredFace(id: id, photo: try row.decode(column: "photo_id", as: Int64.self),
                                  person: try row.decode(column: "person_id", as: Int64?.self),
                                  look: try row.decode(column: "look_id", as: Int64?.self),
                                  embedding: try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)),
                                  embeddingNorm: try row.decode(column: "embedding_norm", as: Double?.self))
        }
        return try ids.map { id in
            guard let face = byID[id] else { throw PhotoSorterError.faceNotFound(id) }
            return face
        }
    }

    /// The id of a live person: 404 when missing; a redirect is followed or refused (409 naming the survivor).
    static func livePerson(_ id: Int64, on tx: any SQLDatabase, followRedirect: Bool) async throws -> Int64 {
        guard let row = try await tx.raw("SELECT merged_into FROM persons WHERE id = \(bind: id)").first() else {
            throw PhotoSorterError.personNotFound(id)
        }
        guard let survivor = try row.decode(column: "merged_into", as: Int64?.self) else { return id }
        if followRedirect { return survivor }
        throw PhotoSorterError.conflict("person \(id) was merged into person \(survivor); use \(survivor)")
    }

    /// A live person that is not hidden: 404 when missing, 409 when merged or hidden (`before` says what to unhide it for).
    private static func requireVisiblePerson(_ id: Int64, on tx: any SQLDatabase, before action: String) async throws {
        _ = try await livePerson(id, on: tx, followRedirect: false)
        if try await tx.raw("SELECT hidden FROM persons WHERE id = \(bind: id)").first()!.decode(column: "hidden", as: Bool.self) {
            throw PhotoSorterError.conflict("person \(id) is hidden; unhide it before \(action)")
        }
    }

    private static func personsWithoutFaces(_ persons: Set<Int64>, on tx: any SQLDatabase) async throws -> [Int64] {
        guard !persons.isEmpty else { return [] }
        let withFaces = Set(try await tx.raw("SELECT DISTINCT person_id FROM embeddings WHERE person_id IN (\(binds: Array(persons)))").all()
            .map { try $0.decode(column: "person_id", as: Int64.self) })
        return persons.subtracting(withFaces).sorted()
    }

    /// A person a rejection left without faces stays as an empty row (ids are never reused: SQLite would hand the
    /// highest id out again after a delete); it is no longer anyone's runner-up.
    private static func clearRunnerUps(to persons: Set<Int64>, on tx: any SQLDatabase) async throws {
        for person in try await personsWithoutFaces(persons, on: tx) {
            try await FacesTable.dropRunnerUps(to: person, on: tx)
        }
    }

    static func face(_ id: Int64, on db: any SQLDatabase) async throws -> FaceView {
        guard let face = try await faces(where: "e.id = \(bind: id)", orderBy: "e.id", limit: 1, on: db).first else {
            throw PhotoSorterError.faceNotFound(id)
        }
        return face
    }

    /// The columns `faceView` reads, of `faceTables`.
    static let faceColumns: SQLQueryString = """
        e.id, e.photo_id, ph.path, e.face_index, e.person_id, e.bbox_x1, e.bbox_y1, e.bbox_x2, e.bbox_y2, e.confidence,
        e.similarity, e.confirmed, e.runner_up_person_id, e.runner_up_similarity
        """
    /// Faces (`e`) with their photo (`ph`) and person (`p`, NULL columns for an unsorted face).
    static let faceTables: SQLQueryString = "embeddings e JOIN photos ph ON ph.id = e.photo_id LEFT JOIN persons p ON p.id = e.person_id"

    static func faces(where condition: SQLQueryString, orderBy: SQLQueryString, limit: Int, on db: any SQLDatabase) async throws -> [FaceView] {
        try await db.raw("SELECT \(faceColumns) FROM \(faceTables) WHERE \(condition) ORDER BY \(orderBy) LIMIT \(bind: limit)")
            .all().map(faceView)
    }

    /// A row of `faceColumns` as a face.
    static func faceView(_ row: any SQLRow) throws -> FaceView {
        FaceView(faceID: try row.decode(column: "id", as: Int64.self), photoID: try row.decode(column: "photo_id", as: Int64.self),
                 path: try row.decode(column: "path", as: String.self), faceIndex: try row.decode(column: "face_index", as: Int.self),
                 personID: try row.decode(column: "person_id", as: Int64?.self),
                 bbox: try BoundingBox(row: row),
                 confidence: try row.decode(column: "confidence", as: Double.self),
                 similarity: try row.decode(column: "similarity", as: Double?.self),
                 confirmed: try row.decode(column: "confirmed", as: Bool.self),
                 runnerUpPersonID: try row.decode(column: "runner_up_person_id", as: Int64?.self),
                 runnerUpSimilarity: try row.decode(column: "runner_up_similarity", as: Double?.self))
    }
}
