import Fluent
import SQLKit

/// SQLite gives a new row the largest id + 1, so deleting the newest face (a changed file, a photo gone missing)
/// let the next face take its id again. The identity index counts a face as new when its id is above the last one
/// it holds, so a reused id was never added to it. `AUTOINCREMENT` never reuses an id; SQLite cannot add it to a
/// table, so `embeddings` is rebuilt once (its rows, ids, indexes and `face_rejections` kept). PostgreSQL's
/// sequences never reuse an id: nothing to do there.
struct KeepEmbeddingIDsUnique: AsyncMigration {
    func prepare(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        guard sql.dialect.name == "sqlite" else { return }
        let table = try await sql.raw("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'embeddings'").first()!
            .decode(column: "sql", as: String.self)
        guard !table.contains("AUTOINCREMENT") else { return }
        let rebuilt = table.replacingOccurrences(of: "CREATE TABLE \"embeddings\"", with: "CREATE TABLE \"embeddings_rebuilt\"")
            .replacingOccurrences(of: "\"id\" INTEGER PRIMARY KEY,", with: "\"id\" INTEGER PRIMARY KEY AUTOINCREMENT,")
        guard rebuilt.contains("embeddings_rebuilt"), rebuilt.contains("AUTOINCREMENT") else {
            throw PhotoSorterError.conflict("unexpected embeddings table definition: \(table)")
        }
        let indexes = try await sql.raw("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'embeddings' AND sql IS NOT NULL")
            .all().map { try $0.decode(column: "sql", as: String.self) }
        try await sql.raw(SQLQueryString(rebuilt)).run()
        try await sql.raw("INSERT INTO embeddings_rebuilt SELECT * FROM embeddings").run()
        // Dropping `embeddings` deletes the rows that reference it (ON DELETE CASCADE): they are put back after.
        try await sql.raw("CREATE TEMP TABLE kept_face_rejections AS SELECT * FROM face_rejections").run()
        try await sql.raw("DROP TABLE embeddings").run()
        try await sql.raw("ALTER TABLE embeddings_rebuilt RENAME TO embeddings").run()
        try await sql.raw("DELETE FROM face_rejections").run()
        try await sql.raw("INSERT INTO face_rejections SELECT * FROM kept_face_rejections").run()
        try await sql.raw("DROP TABLE kept_face_rejections").run()
        for index in indexes { try await sql.raw(SQLQueryString(index)).run() }
    }

    func revert(on database: any Database) async throws {}
}
