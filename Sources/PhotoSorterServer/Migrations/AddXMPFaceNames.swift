import Fluent
import SQLKit

/// What face names from XMP need (README "Face names from XMP"):
/// - `xmp_face_names`: a name an XMP region gave a stored face, written with the analysis; `outcome` is NULL until
///   `XMPNameImport` has turned it into identity (`applied`) or found that it contradicts a user's correction
///   (`conflict`, with `detail`). Rows go with their face.
/// - `embeddings.named_from_xmp` / `parked_faces.named_from_xmp`: the face's confirmation came from an XMP name,
///   not from a user (a later, different name from XMP may move it; a user's confirmation is never overridden).
/// - `persons.name_from_xmp`: the person's name came from XMP (a user's rename is never overridden).
/// - `photos.sidecar_stamp`: size and modification time of the XMP sidecar read with the photo, so that editing
///   names in another tool and scanning again re-reads them.
struct AddXMPFaceNames: AsyncMigration {
    func prepare(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        // One column per statement: SQLite adds one at a time.
        for table in ["embeddings", "parked_faces"] {
            try await database.schema(table).field("named_from_xmp", .bool, .required, .sql(.default(false))).update()
        }
        try await database.schema("persons").field("name_from_xmp", .bool, .required, .sql(.default(false))).update()
        try await database.schema("photos").field("sidecar_stamp", .string).update()
        try await database.schema("xmp_face_names")
            .field("id", .int64, .identifier(auto: true))
            .field("embedding_id", .int64, .required, .references("embeddings", "id", onDelete: .cascade))
            .field("photo_id", .int64, .required)
            .field("name", .string, .required)
            .field("outcome", .string)
            .field("detail", .string)
            .field("created_at", .int64, .required)
            .create()
        try await sql.raw("CREATE UNIQUE INDEX xmp_face_names_embedding ON xmp_face_names (embedding_id)").run()
        try await sql.raw("CREATE INDEX xmp_face_names_outcome ON xmp_face_names (outcome, id)").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("xmp_face_names").delete()
        try await database.schema("photos").deleteField("sidecar_stamp").update()
        try await database.schema("persons").deleteField("name_from_xmp").update()
        for table in ["parked_faces", "embeddings"] { try await database.schema(table).deleteField("named_from_xmp").update() }
    }
}
