import PhotoSorterCore
import SQLKit

/// Finding photos: by people (all together or any of them), by date, in id or taken order, keyset-paged; and who
/// is in a set of photos.
///
/// Photos of people are found in `photo_persons`, which repeats each photo's `taken_at`:
/// - `all` walks the rarest listed person's rows in the asked order (`photo_persons_person_taken` or
///   `photo_persons_person_photo`, within the date range) and keeps a row when every other person has a row for
///   the same photo (a primary-key probe each), so the cost is bounded by the rarest person, never by the largest;
/// - `any` takes the first page of each person alone and merges them (`PhotoQuery.union`).
/// Photos are then read by id, one query per page.
extension ReadQueries {
    /// A page of `query`'s photos. `status` narrows a query without persons (photos with people are all PROCESSED).
    func photos(_ query: PhotoQuery, status: PhotoStatus? = nil) async throws -> PhotoPage {
        do { try query.validate() } catch { throw PhotoSorterError.invalidQuery(error.description) }
        if status != nil && !query.persons.isEmpty {
            throw PhotoSorterError.invalidQuery("status cannot be combined with persons: photos showing people are all PROCESSED")
        }
        let fetch = query.limit + 1
        let keys: [PhotoKey]
        if query.persons.isEmpty {
            keys = try await photoKeys(query, status: status, limit: fetch)
        } else {
            let persons = try await livePersons(query.persons)
            switch query.match {
            case .all:
                let rarestFirst = persons.sorted { ($0.photoCount, $0.id) < ($1.photoCount, $1.id) }.map(\.id)
                keys = try await personPhotoKeys(query, of: rarestFirst[0], alsoShowing: Array(rarestFirst.dropFirst()), limit: fetch)
            case .any:
                var lists: [[PhotoKey]] = []
                for person in persons { lists.append(try await personPhotoKeys(query, of: person.id, alsoShowing: [], limit: fetch)) }
                keys = query.union(of: lists, count: fetch)
            }
        }
        let page = Array(keys.prefix(query.limit))
        let photos = try await photoViews(page.map(\.id))
        let last = keys.count > query.limit ? page.last : nil
        return PhotoPage(photos: photos, nextAfterID: query.order == .id ? last?.id : nil, nextAfter: last.map { query.key(of: $0).description })
    }

    /// Visible persons of `ids`, merged ids followed to their survivor, each once.
    private func livePersons(_ ids: [Int64]) async throws -> [(id: Int64, photoCount: Int)] {
        var persons: [(id: Int64, photoCount: Int)] = []
        for id in ids {
            let person = try await person(id, exampleLimit: 0)
            if !persons.contains(where: { $0.id == person.personID }) { persons.append((person.personID, person.photoCount)) }
        }
        return persons
    }

    /// Conditions on `table`'s `taken_column` and `id_column` for the date range and the keyset position.
    private static func rangeAndKeyset(_ query: PhotoQuery, taken: String, id: String) -> [SQLQueryString] {
        var conditions: [SQLQueryString] = []
        let (lower, upper) = query.takenBounds
        if let lower { conditions.append("\(unsafeRaw: taken) >= \(bind: lower)") }
        if let upper { conditions.append("\(unsafeRaw: taken) <= \(bind: upper)") }
        if let after = query.after {
            let comparison = query.order.descending ? "<" : ">"
            if let afterTaken = after.taken {
                conditions.append("(\(unsafeRaw: taken), \(unsafeRaw: id)) \(unsafeRaw: comparison) (\(bind: afterTaken), \(bind: after.id))")
            } else {
                conditions.append("\(unsafeRaw: id) \(unsafeRaw: comparison) \(bind: after.id)")
            }
        }
        return conditions
    }

    private static func orderClause(_ order: PhotoQuery.Order, taken: String, id: String) -> String {
        switch order {
        case .id: id
        case .taken: "\(taken), \(id)"
        case .takenDesc: "\(taken) DESC, \(id) DESC"
        }
    }

    /// Photos without a person filter, straight from `photos` (`photos_taken`, `photos_status_id` or the primary key).
    private func photoKeys(_ query: PhotoQuery, status: PhotoStatus?, limit: Int) async throws -> [PhotoKey] {
        var conditions = Self.rangeAndKeyset(query, taken: "p.taken_at", id: "p.id")
        // Missing photos are listed only when asked for (`status=MISSING`).
        conditions.append(status.map { "p.status = \(bind: $0.rawValue)" } ?? "p.status <> 'MISSING'")
        if query.order.byTaken { conditions.append("p.taken_at IS NOT NULL") }
        let filter = conditions.isEmpty ? SQLQueryString("") : "WHERE " + conditions.joined(separator: " AND ")
        return try await database.sql.raw("""
            SELECT p.id, p.taken_at FROM photos p \(filter)
            ORDER BY \(unsafeRaw: Self.orderClause(query.order, taken: "p.taken_at", id: "p.id")) LIMIT \(bind: limit)
            """).all().map { PhotoKey(id: try $0.decode(column: "id", as: Int64.self), taken: try $0.decode(column: "taken_at", as: String?.self) ?? "") }
    }

    /// `person`'s photos that also show every one of `others`, in the query's order and range.
    private func personPhotoKeys(_ query: PhotoQuery, of person: Int64, alsoShowing others: [Int64], limit: Int) async throws -> [PhotoKey] {
        var conditions: [SQLQueryString] = ["pp.person_id = \(bind: person)"]
        conditions += Self.rangeAndKeyset(query, taken: "pp.taken_at", id: "pp.photo_id")
        for other in others {
            conditions.append("EXISTS (SELECT 1 FROM photo_persons o WHERE o.photo_id = pp.photo_id AND o.person_id = \(bind: other))")
        }
        return try await database.sql.raw("""
            SELECT pp.photo_id, pp.taken_at FROM photo_persons pp WHERE \(conditions.joined(separator: " AND "))
            ORDER BY \(unsafeRaw: Self.orderClause(query.order, taken: "pp.taken_at", id: "pp.photo_id")) LIMIT \(bind: limit)
            """).all().map { PhotoKey(id: try $0.decode(column: "photo_id", as: Int64.self), taken: try $0.decode(column: "taken_at", as: String.self)) }
    }

    /// The photos of `ids`, in that order.
    private func photoViews(_ ids: [Int64]) async throws -> [PhotoView] {
        guard !ids.isEmpty else { return [] }
        var byID: [Int64: PhotoView] = [:]
        for row in try await database.sql.raw("SELECT \(unsafeRaw: Self.photoColumns) FROM photos p WHERE p.id IN (\(binds: ids))").all() {
            let photo = try PhotoRow(row).view(detections: nil)
            byID[photo.photoID] = photo
        }
        return ids.compactMap { byID[$0] }
    }

    /// Who is in the photos of `ids` (at most `maxPhotoSet`), or under `folder` (a canonical absolute path).
    func people(inPhotos ids: [Int64]) async throws -> PeopleInPhotos {
        guard (1...Self.maxPhotoSet).contains(ids.count) else {
            throw PhotoSorterError.invalidQuery("ids must list 1...\(Self.maxPhotoSet) photos, got \(ids.count)")
        }
        var photos = 0
        var counts: [Int64: Int] = [:]
        var withPeople = Set<Int64>()
        let unique = Array(Set(ids))
        for start in stride(from: 0, to: unique.count, by: 1000) {
            let chunk = Array(unique[start..<min(start + 1000, unique.count)])
            photos += try await database.sql.raw("SELECT COUNT(*) AS n FROM photos WHERE id IN (\(binds: chunk))").first()!.decode(column: "n", as: Int.self)
            for row in try await database.sql.raw("""
                SELECT pp.photo_id, pp.person_id FROM photo_persons pp JOIN persons s ON s.id = pp.person_id
                WHERE pp.photo_id IN (\(binds: chunk)) AND s.hidden = \(false)
                """).all() {
                counts[try row.decode(column: "person_id", as: Int64.self), default: 0] += 1
                withPeople.insert(try row.decode(column: "photo_id", as: Int64.self))
            }
        }
        return try await peopleInPhotos(photos: photos, withPeople: withPeople.count, counts: counts)
    }

    func people(inFolder folder: String) async throws -> PeopleInPhotos {
        // Every path below `folder/`: from `folder/` up to `folder0` ('0' follows '/'), a range of the path index.
        let (lower, upper) = (folder + "/", folder + "0")
        let photos = try await database.sql.raw("""
            SELECT COUNT(*) AS n FROM photos WHERE path >= \(bind: lower) AND path < \(bind: upper)
            """).first()!.decode(column: "n", as: Int.self)
        var counts: [Int64: Int] = [:]
        var withPeople = Set<Int64>()
        for row in try await database.sql.raw("""
            SELECT pp.photo_id, pp.person_id FROM photos p JOIN photo_persons pp ON pp.photo_id = p.id JOIN persons s ON s.id = pp.person_id
            WHERE p.path >= \(bind: lower) AND p.path < \(bind: upper) AND s.hidden = \(false)
            """).all() {
            counts[try row.decode(column: "person_id", as: Int64.self), default: 0] += 1
            withPeople.insert(try row.decode(column: "photo_id", as: Int64.self))
        }
        return try await peopleInPhotos(photos: photos, withPeople: withPeople.count, counts: counts)
    }

    static let maxPhotoSet = 10_000

    private func peopleInPhotos(photos: Int, withPeople: Int, counts: [Int64: Int]) async throws -> PeopleInPhotos {
        var names: [Int64: String] = [:]
        let ids = Array(counts.keys)
        for start in stride(from: 0, to: ids.count, by: 1000) {
            for row in try await database.sql.raw("""
                SELECT id, display_name FROM persons WHERE id IN (\(binds: Array(ids[start..<min(start + 1000, ids.count)]))) AND display_name IS NOT NULL
                """).all() {
                names[try row.decode(column: "id", as: Int64.self)] = try row.decode(column: "display_name", as: String.self)
            }
        }
        let persons = counts.map { PeopleInPhotos.Person(personID: $0.key, displayName: names[$0.key], photoCount: $0.value) }
            .sorted { ($1.photoCount, $0.personID) < ($0.photoCount, $1.personID) }
        return PeopleInPhotos(photos: photos, photosWithPeople: withPeople, persons: persons)
    }
}
