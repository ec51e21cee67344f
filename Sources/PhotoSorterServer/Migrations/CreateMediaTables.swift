import Fluent
import SQLKit

/// Images for the web page (README "The people web page"), made by the ML service from the image it already decoded:
/// - `face_thumbnails`: a small square JPEG per face, keyed by photo and box rather than by embedding id, so a
///   reprocess (which replaces every embedding row) keeps the thumbnails of the boxes it finds again;
/// - `photo_previews`: one downscaled JPEG per photo with its size.
/// Both live in the database so every instance on a shared PostgreSQL serves them.
struct CreateMediaTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("face_thumbnails")
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("bbox_x1", .int, .required)
            .field("bbox_y1", .int, .required)
            .field("bbox_x2", .int, .required)
            .field("bbox_y2", .int, .required)
            .field("jpeg", .data, .required)
            .unique(on: "photo_id", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")
            .create()
        try await database.schema("photo_previews")
            .field("photo_id", .int64, .required, .references("photos", "id", onDelete: .cascade))
            .field("width", .int, .required)
            .field("height", .int, .required)
            .field("jpeg", .data, .required)
            .unique(on: "photo_id")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("photo_previews").delete()
        try await database.schema("face_thumbnails").delete()
    }
}
