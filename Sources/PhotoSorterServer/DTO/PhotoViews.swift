import PhotoSorterCore
import Vapor

/// One face of a photo in GET /photo/{id}.
public struct DetectionView: Codable, Sendable, Equatable {
    public var embeddingID: Int64
    public var bbox: BoundingBox
    public var confidence: Double
    /// Nil (`null`): an unsure face that matched no person (unsorted; `FaceModel.unsureBelowNorm`).
    @NullWhenAbsent public var personID: Int64?
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
    /// When it was taken: ISO 8601 wall clock, with the offset when the photo records one (`2019-06-01T14:03:22+02:00`).
    public var takenAt: String?
    /// `exif`, `xmp` or `mtime` (the file's time: the photo carries no date, or its header was not read yet).
    public var takenAtSource: TakenDate.Source?
    /// Since when the file has been gone (ms since 1970), while `status` is MISSING.
    public var missingSince: Int64?
    public var detections: [DetectionView]?

    enum CodingKeys: String, CodingKey {
        case path, filename, status, width, height, detections
        case missingSince = "missing_since"
        case takenAt = "taken_at"
        case takenAtSource = "taken_at_source"
        case photoID = "photo_id"
        case noFaces = "no_faces"
        case personIDs = "person_ids"
        case retryCount = "retry_count"
        case lastError = "last_error"
    }
}

/// GET /photos, GET /person/{id}/photos: a keyset page. `next_after` continues any order (`after=`);
/// `next_after_id` is the same position in id order (`after_id=`).
public struct PhotoPage: Content, Sendable {
    public var photos: [PhotoView]
    public var nextAfterID: Int64?
    public var nextAfter: String?

    enum CodingKeys: String, CodingKey {
        case photos
        case nextAfterID = "next_after_id"
        case nextAfter = "next_after"
    }
}

/// GET /photos/people: who is in a set of photos (the photos of a party), most photos first.
public struct PeopleInPhotos: Content, Sendable {
    public struct Person: Codable, Sendable, Equatable {
        public var personID: Int64
        public var displayName: String?
        /// Photos of the set showing the person.
        public var photoCount: Int

        enum CodingKeys: String, CodingKey {
            case personID = "person_id"
            case displayName = "display_name"
            case photoCount = "photo_count"
        }
    }

    /// Photos of the set that are in the library.
    public var photos: Int
    /// Of those, the photos showing at least one visible person.
    public var photosWithPeople: Int
    /// Visible persons (hidden ones are left out, as on the people list).
    public var persons: [Person]

    enum CodingKeys: String, CodingKey {
        case photos, persons
        case photosWithPeople = "photos_with_people"
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
    /// Wall-clock time of the person's first and last photo (`taken_at` without offset).
    public var firstTaken: String?
    public var lastTaken: String?
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
        case firstTaken = "first_taken"
        case lastTaken = "last_taken"
        case representativeEmbedding = "representative_embedding"
    }
}

/// GET /person-dump: representative embeddings for the ML service's local nearest-neighbour hints.
public struct PersonDump: Content, Sendable {
    /// One look of a person (`IdentityIndex`): its own, keyed by the person's id, or one kept from a merge.
    public struct Entry: Codable, Sendable {
        public var personID: Int64
        /// The look's key: the person's id for its own look, a merged-in person's id for a look kept from a merge.
        public var lookID: Int64
        public var representativeEmbedding: String
        public var representativePhotoID: Int64?
        /// The person's name and visibility as corrected by users (renames and hides reach the ML service's cache).
        public var displayName: String?
        public var hidden: Bool
        public var meta: [String: Int]
        /// `PersonProfile.coherence`: cosine to `representative_embedding` × this = the face's mean similarity.
        public var coherence: Float

        enum CodingKeys: String, CodingKey {
            case meta, hidden, coherence
            case displayName = "display_name"
            case personID = "person_id"
            case lookID = "look_id"
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
    /// Changes only: looks with no faces any more (emptied; a merged person's look stays, under its new owner).
    public var removed: [Int64]
    /// Changes only: the epoch asked for is over (the instance reloaded): list everything again.
    public var reset: Bool
    /// How every `representative_embedding` of this answer is encoded (`encoding=` of the request).
    public var embeddingEncoding: EmbeddingEncoding
    /// The rule faces join persons by (nil before the library has a face model): the ML service's suggestions
    /// use it, so the two sides never disagree on a threshold.
    public var identityRule: IdentityRule?

    /// `IdentityPolicy` on the wire: a face joins a person of `n` faces when its mean similarity is at least
    /// `match_threshold + small_person_margin / sqrt(n)`.
    public struct IdentityRule: Codable, Sendable {
        public var matchThreshold: Float
        public var smallPersonMargin: Float

        enum CodingKeys: String, CodingKey {
            case matchThreshold = "match_threshold"
            case smallPersonMargin = "small_person_margin"
        }
    }

    enum CodingKeys: String, CodingKey {
        case persons, epoch, seq, removed, reset
        case identityRule = "identity_rule"
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
