import Fluent
import SQLKit

/// People corrections and re-clustering (README "People: corrections, re-cluster, export"):
/// - `persons.hidden`; `persons.merged_into`: an absorbed person's row stays as a redirect to the survivor
///   (always a live person: chains are shortened on every merge);
/// - `embeddings.confirmed`: a face a user placed (a move, a confirmation, a merge) never moves by itself;
///   `runner_up_person_id` / `runner_up_similarity`: the nearest person the face did not join (review queue);
/// - `face_rejections`: "not this person" (cannot-link between a face and a person);
/// - `recluster_jobs`: one row per `POST /recluster` / `photo-sorter recluster`;
/// - `identity_generation`: a counter every correction, re-cluster and reprocess bumps, so every instance
///   reloads its identity index when another one changed persons.
struct CreatePeopleTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        // One column per ALTER TABLE: SQLite adds a single column per statement.
        try await database.schema("persons").field("hidden", .bool, .required, .sql(.default(false))).update()
        try await database.schema("persons").field("merged_into", .int64).update()
        try await database.schema("embeddings").field("confirmed", .bool, .required, .sql(.default(false))).update()
        try await database.schema("embeddings").field("runner_up_person_id", .int64).update()
        try await database.schema("embeddings").field("runner_up_similarity", .double).update()
        try await database.schema("face_rejections")
            .field("embedding_id", .int64, .required, .references("embeddings", "id", onDelete: .cascade))
            .field("person_id", .int64, .required)
            .field("created_at", .int64, .required)
            .unique(on: "embedding_id", "person_id")
            .create()
        try await database.schema("recluster_jobs")
            .field("job_id", .string, .identifier(auto: false))
            .field("status", .string, .required)
            .field("result", .string)
            .field("error", .string)
            .field("created_at", .int64, .required)
            .field("finished_at", .int64)
            .create()
        try await database.schema("identity_generation")
            .field("id", .int, .identifier(auto: false))
            .field("generation", .int64, .required)
            .create()
        let sql = database as! any SQLDatabase
        try await sql.raw("INSERT INTO identity_generation (id, generation) VALUES (1, 0)").run()
        try await sql.create(index: "persons_merged_into").on("persons").column("merged_into").run()
    }

    func revert(on database: any Database) async throws {
        for table in ["identity_generation", "recluster_jobs", "face_rejections"] {
            try await database.schema(table).delete()
        }
        for field in ["confirmed", "runner_up_person_id", "runner_up_similarity"] {
            try await database.schema("embeddings").deleteField(.string(field)).update()
        }
        for field in ["hidden", "merged_into"] {
            try await database.schema("persons").deleteField(.string(field)).update()
        }
    }
}
