import Fluent

/// A merge keeps its parts as looks of the surviving person (`IdentityIndex`): each face records the look it counts
/// in, and what replays the index records looks too. In every column NULL means the person's own look (look id =
/// person id), so rows written before this migration need no rewrite.
/// - `embeddings.look_id`, `parked_faces.look_id`: the face's look when it is a merged-in person's;
/// - `identity_changes.from_look`, `to_look`: the looks a logged move left and entered;
/// - `identity_snapshot_persons.owner_id`: a snapshot row is a look (`person_id` holds the look id); this is the
///   person owning it when that is another.
struct AddFaceLooks: AsyncMigration {
    func prepare(on database: any Database) async throws {
        // One column per statement: SQLite adds one at a time.
        try await database.schema("embeddings").field("look_id", .int64).update()
        try await database.schema("parked_faces").field("look_id", .int64).update()
        try await database.schema("identity_changes").field("from_look", .int64).update()
        try await database.schema("identity_changes").field("to_look", .int64).update()
        try await database.schema("identity_snapshot_persons").field("owner_id", .int64).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("identity_snapshot_persons").deleteField("owner_id").update()
        try await database.schema("identity_changes").deleteField("to_look").update()
        try await database.schema("identity_changes").deleteField("from_look").update()
        try await database.schema("parked_faces").deleteField("look_id").update()
        try await database.schema("embeddings").deleteField("look_id").update()
    }
}
