import Fluent
import SQLKit

/// `identity_snapshots` + `identity_snapshot_persons`: the identity index saved as per-person sums (README "Large
/// libraries"), so a start-up reads one row per person and catches up on what was committed since, instead of
/// every stored face.
/// A snapshot is used only while `complete` and of the current `identity_generation`; its marks
/// (`last_embedding_id`, `last_change_seq`) say where the catch-up starts.
struct CreateIdentitySnapshots: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("identity_snapshots")
            .field("id", .int64, .identifier(auto: true))
            .field("generation", .int64, .required)
            .field("last_embedding_id", .int64, .required)
            .field("last_change_seq", .int64, .required)
            .field("person_count", .int, .required)
            .field("face_count", .int64, .required)
            .field("complete", .bool, .required)
            .field("created_at", .int64, .required)
            .create()
        try await database.schema("identity_snapshot_persons")
            .field("snapshot_id", .int64, .required)
            .field("person_id", .int64, .required)
            .field("face_count", .int, .required)
            .field("vector_sum", .data, .required)
            .compositeIdentifier(over: "snapshot_id", "person_id")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("identity_snapshot_persons").delete()
        try await database.schema("identity_snapshots").delete()
    }
}
