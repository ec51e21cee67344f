import Fluent

/// `photos.full_hash` was never written (a changed file is told by its size, time and sample hash): gone.
struct DropPhotoFullHash: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("photos").deleteField("full_hash").update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("photos").field("full_hash", .string).update()
    }
}
