import Vapor

/// GET /xmp/names: what became of the names read from XMP face regions (README "Face names from XMP").
public struct XMPNamesSummary: Content, Sendable, Equatable {
    /// A name that was not applied, because it contradicts a user's correction (or the corrections' rules).
    public struct Conflict: Content, Sendable, Equatable {
        public var faceID: Int64
        public var photoID: Int64
        public var path: String
        public var name: String
        public var reason: String

        enum CodingKeys: String, CodingKey {
            case path, name, reason
            case faceID = "face_id"
            case photoID = "photo_id"
        }
    }

    /// Names recorded but not applied yet, names applied, and names in conflict.
    public var pending: Int
    public var applied: Int
    public var conflicts: Int
    /// The conflicts, oldest first (at most the request's `limit`).
    public var conflictList: [Conflict]

    enum CodingKeys: String, CodingKey {
        case pending, applied, conflicts
        case conflictList = "conflict_list"
    }
}
