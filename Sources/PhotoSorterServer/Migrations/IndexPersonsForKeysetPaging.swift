import Fluent
import SQLKit

/// The people list pages by a keyset cursor (`PersonCursor`): most photos first, then the newest id, so the page
/// after `(count, id)` is the rest of that count below the id, then the fewer counts — ranges of one ascending
/// `(photo_count, id)` index read backwards, at any depth (`PeopleService.list`). The index it replaces,
/// `(photo_count DESC, id)`, mixed two directions, and a cursor on it had to be an `OR` that neither database
/// could seek (a scan up to the cursor: 40 ms at depth 500,000 on SQLite).
struct IndexPersonsForKeysetPaging: AsyncMigration {
    func prepare(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        try await sql.raw("DROP INDEX persons_by_photo_count").run()
        try await sql.raw("CREATE INDEX persons_by_photo_count_id ON persons (photo_count, id)").run()
    }

    func revert(on database: any Database) async throws {
        let sql = database as! any SQLDatabase
        try await sql.raw("DROP INDEX persons_by_photo_count_id").run()
        try await sql.raw("CREATE INDEX persons_by_photo_count ON persons (photo_count DESC, id)").run()
    }
}
