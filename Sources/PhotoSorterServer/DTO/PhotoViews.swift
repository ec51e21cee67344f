import PhotoSorterCore
import Vapor

/// One face of a photo in GET /photo/{id}.
public struct DetectionView: Codable, Sendable, Equatable {
    public var embeddingID: Int64
    public var bbox: BoundingBox
    public var confidence: Double
    public var personID: Int64
    public var similarity: Double?
    public var createdPerson: Bool

    enum CodingKeys: String, CodingKey {
        case bbox, confidence, similarity
        case embeddingID = "embedding_id"
        case personID = "person_id"
        case createdPerson = "created_person"
    }
}

/// GET /photo/{id}.
public struct PhotoView: Content, Sendable, Equatable {
    public var photoID: Int64
    public var path: String
    public var filename: String
    public var status: PhotoStatus
    public var width: Int?
    public var height: Int?
    public var noFaces: Bool?
    public var personIDs: [Int64]
    public var retryCount: Int
    public var lastError: String?
    public var detections: [DetectionView]?

    enum CodingKeys: String, CodingKey {
        case path, filename, status, width, height, detections
        case photoID = "photo_id"
        case noFaces = "no_faces"
        case personIDs = "person_ids"
        case retryCount = "retry_count"
        case lastError = "last_error"
    }
}

/// GET /photos: a page of photos, keyset-paginated by id.
public struct PhotoPage: Content, Sendable {
    public var photos: [PhotoView]
    public var nextAfterID: Int64?

    enum CodingKeys: String, CodingKey {
        case photos
        case nextAfterID = "next_after_id"
    }
}

/// GET /person/{id}.
public struct PersonView: Content, Sendable {
    public struct ExamplePhoto: Codable, Sendable {
        public var photoID: Int64
        public var path: String

        enum CodingKeys: String, CodingKey {
            case path
            case photoID = "photo_id"
        }
    }

    public var personID: Int64
    public var displayName: String?
    public var hidden: Bool
    public var faceCount: Int
    public var photoCount: Int
    public var createdAt: Int64
    public var examplePhotos: [ExamplePhoto]
    public var representativeEmbedding: String?
    /// Set when the id asked for was merged into this person: the asked id and the survivor (this `personID`).
    public var redirectedFrom: Int64?
    public var mergedInto: Int64?

    enum CodingKeys: String, CodingKey {
        case hidden
        case redirectedFrom = "redirected_from"
        case mergedInto = "merged_into"
        case personID = "person_id"
        case displayName = "display_name"
        case faceCount = "face_count"
        case photoCount = "photo_count"
        case createdAt = "created_at"
        case examplePhotos = "example_photos"
        case representativeEmbedding = "representative_embedding"
    }
}

/// GET /person-dump: representative embeddings for the ML service's local nearest-neighbour hints.
public struct PersonDump: Content, Sendable {
    public struct Entry: Codable, Sendable {
        public var personID: Int64
        public var representativeEmbedding: String
        public var representativePhotoID: Int64?
        /// The person's name and visibility as corrected by users (renames and hides reach the ML service's cache).
        public var displayName: String?
        public var hidden: Bool
        public var meta: [String: Int]

        enum CodingKeys: String, CodingKey {
            case meta, hidden
            case displayName = "display_name"
            case personID = "person_id"
            case representativeEmbedding = "representative_embedding"
            case representativePhotoID = "representative_photo_id"
        }
    }

    public var persons: [Entry]
    public var nextSinceID: Int64
    public var hasMore: Bool
    /// The serving instance's index life; change sequences compare only within one epoch.
    public var epoch: String
    /// A listing: the change sequence when it was read. Changes: the sequence to ask from next.
    public var seq: Int64
    /// Changes only: persons with no faces any more (merged into another, emptied).
    public var removed: [Int64]
    /// Changes only: the epoch asked for is over (the instance reloaded): list everything again.
    public var reset: Bool
    /// How every `representative_embedding` of this answer is encoded (`encoding=` of the request).
    public var embeddingEncoding: EmbeddingEncoding

    enum CodingKeys: String, CodingKey {
        case persons, epoch, seq, removed, reset
        case nextSinceID = "next_since_id"
        case hasMore = "has_more"
        case embeddingEncoding = "embedding_encoding"
    }
}

/// PUT /photo/update-status.
public struct StatusUpdate: Content, Sendable {
    public var photoID: Int64
    public var status: PhotoStatus
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case status, error
        case photoID = "photo_id"
    }
}

/// POST /classify-photo: one of the two.
public struct ClassifyRequest: Content, Sendable {
    public var photoID: Int64?
    public var path: String?

    enum CodingKeys: String, CodingKey {
        case path
        case photoID = "photo_id"
    }
}
