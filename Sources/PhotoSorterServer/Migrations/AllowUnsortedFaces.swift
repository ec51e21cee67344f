import Fluent
import SQLKit

/// An unsure face (`FaceModel.unsureBelowNorm`) that matches no person is stored without one: it is drawn on its
/// photo but starts no person. So a face's person may be NULL — `embeddings.person_id`, `parked_faces.person_id`,
/// and `identity_changes.from_person` for a logged move of such a face into a person — and each face keeps the
/// quality signal it was judged by (`embedding_norm`, the embedding's length before L2 normalisation; also staged
/// with a reprocess's faces).
///
/// SQLite cannot drop a NOT NULL constraint with `ALTER TABLE`. Its documented way for a change that leaves the
/// stored rows valid as they are (removing a NOT NULL constraint is one) is to edit the table's definition in
/// `sqlite_schema` with `writable_schema` and bump `schema_version`: instant at a million faces, where a rebuild
/// would copy every row.
struct AllowUnsortedFaces: AsyncMigration {
    /// (table, the column's definition in the `CREATE TABLE` text Fluent wrote, the same without NOT NULL).
    private static let sqliteColumns = [
        ("embeddings", "\"person_id\" INTEGER NOT NULL", "\"person_id\" INTEGER"),
        ("parked_faces", "\"person_id\" INTEGER NOT NULL", "\"person_id\" INTEGER"),
        ("identity_changes", "\"from_person\" INTEGER NOT NULL", "\"from_person\" INTEGER"),
    ]

    func prepare(on database: any Database) async throws {
        try await database.schema("embeddings").field("embedding_norm", .double).update()
        try await database.schema("parked_faces").field("embedding_norm", .double).update()
        try await database.schema("reprocess_faces").field("embedding_norm", .double).update()
        let sql = database as! any SQLDatabase
        guard sql.dialect.name == "sqlite" else {
            for (table, column) in [("embeddings", "person_id"), ("parked_faces", "person_id"), ("identity_changes", "from_person")] {
                try await sql.raw("ALTER TABLE \(ident: table) ALTER COLUMN \(ident: column) DROP NOT NULL").run()
            }
            return
        }
        let version = try await sql.raw("PRAGMA schema_version").first()!.decode(column: "schema_version", as: Int.self)
        try await sql.raw("PRAGMA writable_schema = ON").run()
        for (table, required, nullable) in Self.sqliteColumns {
            let definition = try await sql.raw("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = \(bind: table)").first()!
                .decode(column: "sql", as: String.self)
            guard definition.components(separatedBy: required).count == 2 else {
                try await sql.raw("PRAGMA writable_schema = OFF").run()
                throw PhotoSorterError.conflict("unexpected definition of table \(table): \(definition)")
            }
            try await sql.raw("""
                UPDATE sqlite_schema SET sql = \(bind: definition.replacingOccurrences(of: required, with: nullable))
                WHERE type = 'table' AND name = \(bind: table)
                """).run()
        }
        try await sql.raw("PRAGMA schema_version = \(unsafeRaw: String(version + 1))").run()
        try await sql.raw("PRAGMA writable_schema = OFF").run()
        let check = try await sql.raw("PRAGMA quick_check").first()!.decode(column: "quick_check", as: String.self)
        guard check == "ok" else { throw PhotoSorterError.conflict("database check after making person_id nullable: \(check)") }
    }

    func revert(on database: any Database) async throws {
        try await database.schema("reprocess_faces").deleteField("embedding_norm").update()
        try await database.schema("parked_faces").deleteField("embedding_norm").update()
        try await database.schema("embeddings").deleteField("embedding_norm").update()
    }
}
