import PhotoSorterCore
import Vapor

/// People and their corrections: GET /persons, GET /person/{id}, GET /person/{id}/faces|photos, PATCH /person/{id},
/// POST /persons/merge, GET /faces/{id}, POST /faces/move, POST /faces/{id}/reject|confirm, GET /review.
/// Writes need the shared secret when one is set.
struct PeopleController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get("persons", use: list)
        routes.get("person", ":id", use: person)
        routes.get("person", ":id", "faces", use: faces)
        routes.get("person", ":id", "photos", use: photos)
        routes.patch("person", ":id", use: update)
        routes.post("persons", "merge", use: merge)
        routes.get("faces", ":id", use: face)
        routes.post("faces", "move", use: move)
        routes.post("faces", ":id", "reject", use: reject)
        routes.post("faces", ":id", "confirm", use: confirm)
        routes.get("review", use: review)
    }

    /// `?after|offset&limit&name&hidden=false|true|any&unnamed=true&min_photos=2&count=true`
    func list(req: Request) async throws -> PersonPage {
        var query = PersonListQuery()
        query.offset = try req.optionalQuery(Int.self, "offset") ?? 0
        if let after = try req.optionalQuery(String.self, "after") {
            guard let cursor = PersonCursor(after) else { throw PhotoSorterError.invalidQuery("after must be a next_after of an earlier page, got \(after)") }
            query.after = cursor
        }
        query.limit = try req.optionalQuery(Int.self, "limit") ?? 50
        query.name = try req.optionalQuery(String.self, "name")
        if let hidden = try req.optionalQuery(String.self, "hidden") {
            guard let value = PersonListQuery.Hidden(rawValue: hidden) else {
                throw PhotoSorterError.invalidRequest("hidden must be false, true or any")
            }
            query.hidden = value
        }
        query.unnamedOnly = try req.optionalQuery(Bool.self, "unnamed") ?? false
        query.minPhotos = try req.optionalQuery(Int.self, "min_photos") ?? query.minPhotos
        query.counts = try req.optionalQuery(Bool.self, "count") ?? true
        return try await req.photoSorter.people.list(query)
    }

    /// `?include_embedding=true` adds the representative embedding; it needs the shared secret when one is set.
    func person(req: Request) async throws -> PersonView {
        let id = try req.int64Parameter("id")
        let includeEmbedding = try req.optionalQuery(Bool.self, "include_embedding") == true
        var view = try await req.photoSorter.reads.person(id)
        if includeEmbedding {
            try req.requireSecret()
            view.representativeEmbedding = req.photoSorter.identity.representative(of: view.personID).map { EmbeddingCodec.base64($0) }
        }
        return view
    }

    func faces(req: Request) async throws -> FacePage {
        try await req.photoSorter.people.faces(of: try req.int64Parameter("id"),
                                                afterID: try req.optionalQuery(Int64.self, "after_id") ?? 0,
                                                limit: try req.optionalQuery(Int.self, "limit") ?? 100)
    }

    /// `Request.photoQuery` without `persons=` (the path names the person); `PeopleService.photos` checks the limit.
    func photos(req: Request) async throws -> PhotoPage {
        guard try req.optionalQuery(String.self, "persons") == nil else {
            throw PhotoSorterError.invalidQuery("persons= belongs to GET /photos; this path names the person")
        }
        return try await req.photoSorter.people.photos(of: try req.int64Parameter("id"), query: try req.photoQuery(defaultLimit: 100))
    }

    func update(req: Request) async throws -> PersonView {
        try req.requireSecret()
        return try await req.photoSorter.people.update(try req.int64Parameter("id"), try req.content.decode(PersonUpdate.self))
    }

    func merge(req: Request) async throws -> MergeResult {
        try req.requireSecret()
        return try await req.photoSorter.people.merge(try req.content.decode(MergeRequest.self))
    }

    func face(req: Request) async throws -> FaceView {
        try await req.photoSorter.people.face(try req.int64Parameter("id"))
    }

    func move(req: Request) async throws -> MoveResult {
        try req.requireSecret()
        return try await req.photoSorter.people.move(try req.content.decode(MoveRequest.self))
    }

    /// Body optional: `{"person_id": N}` says which person the face is not (default its own).
    func reject(req: Request) async throws -> RejectResult {
        try req.requireSecret()
        let body = req.body.data == nil ? RejectRequest() : try req.content.decode(RejectRequest.self)
        return try await req.photoSorter.people.reject(face: try req.int64Parameter("id"), person: body.personID)
    }

    func confirm(req: Request) async throws -> FaceView {
        try req.requireSecret()
        return try await req.photoSorter.people.confirm(face: try req.int64Parameter("id"))
    }

    func review(req: Request) async throws -> ReviewPage {
        try await req.photoSorter.people.review(limit: try req.optionalQuery(Int.self, "limit") ?? 20)
    }
}
