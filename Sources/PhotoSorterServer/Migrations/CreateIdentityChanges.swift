import Fluent

/// `identity_changes`: the change log of the identity index (README "Scale-out: several machines"). Each face
/// that moved between persons or was removed, in commit order (`seq` is allocated under the identity lock), with
/// its vector, so every instance replays it into its index at its next catch-up instead of reloading everything.
struct CreateIdentityChanges: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("identity_changes")
            .field("seq", .int64, .identifier(auto: true))
            .field("embedding_id", .int64, .required)
            .field("from_person", .int64, .required)
            .field("to_person", .int64)
            .field("vector", .data, .required)
            .field("created_at", .int64, .required)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("identity_changes").delete()
    }
}
