import Fluent
import SQLKit

/// Faces by runner-up: a merge points the runner-ups of the absorbed persons at the survivor, and a person left
/// without faces is no one's runner-up (`FacesTable.redirectRunnerUps`, `dropRunnerUps`). Without this index each was a scan of
/// every face with its vector: a re-cluster of a million faces that recorded 90 merges scanned the table 90 times
/// (bench/RESULTS.md, "Re-cluster at a million faces"). Partial: faces without a runner-up are never looked up by it.
struct IndexRunnerUps: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await (database as! any SQLDatabase).raw("""
            CREATE INDEX embeddings_runner_up ON embeddings (runner_up_person_id) WHERE runner_up_person_id IS NOT NULL
            """).run()
    }

    func revert(on database: any Database) async throws {
        try await (database as! any SQLDatabase).raw("DROP INDEX embeddings_runner_up").run()
    }
}
