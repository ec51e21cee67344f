import PhotoSorterCore
import Vapor

/// One person in GET /persons.
public struct PersonSummary: Content, Sendable, Equatable {
    public var personID: Int64
    public var displayName: String?
    public var hidden: Bool
    public var faceCount: Int
    public var photoCount: Int
    public var representativePhotoID: Int64?
    public var createdAt: Int64
    /// The face `GET /thumbnails/person/{id}.jpg` shows (a confirmed face first, then the most confident).
    public var coverFaceID: Int64?
    /// Wall-clock time of the person's first and last photo: the years they span.
    public var firstTaken: String?
    public var lastTaken: String?

    enum CodingKeys: String, CodingKey {
        case hidden
        case firstTaken = "first_taken"
        case lastTaken = "last_taken"
        case coverFaceID = "cover_face_id"
        case personID = "person_id"
        case displayName = "display_name"
        case faceCount = "face_count"
        case photoCount = "photo_count"
        case representativePhotoID = "representative_photo_id"
        case createdAt = "created_at"
    }
}

/// GET /persons: a page of persons, most photos first.
public struct PersonPage: Content, Sendable {
    public var persons: [PersonSummary]
    /// Persons matching the filter. Absent from a page asked with `after` or `count=false`: counting every person
    /// costs more than a page, which a cursor keeps as cheap at any depth as the first.
    public var total: Int?
    /// Persons every other filter matches that are left out for having fewer than `min_photos` photos (and no
    /// name): what `min_photos=1` would add. 0 with `min_photos=1`. Absent with `after`, like `total`.
    public var belowMinPhotos: Int?
    /// The next page by offset (`offset` paging), nil on the last page or with `after`.
    public var nextOffset: Int?
    /// The next page by cursor: pass it as `after`; nil on the last page.
    public var nextAfter: String?

    enum CodingKeys: String, CodingKey {
        case persons, total
        case belowMinPhotos = "below_min_photos"
        case nextOffset = "next_offset"
        case nextAfter = "next_after"
    }
}

/// Which persons GET /persons lists.
public struct PersonListQuery: Sendable {
    public enum Hidden: String, Sendable, CaseIterable { case `false`, `true`, any }

    public var offset = 0
    /// Start after this person (keyset paging, `PersonPage.nextAfter`), instead of `offset`.
    public var after: PersonCursor?
    /// Count the persons listed and left out (`total`, `below_min_photos`) on a page asked without `after`. Counting
    /// reads every person: a page that does not need the counts (or asks for them apart) is faster without.
    public var counts = true
    public var limit = 50
    /// Case-insensitive part of the display name.
    public var name: String?
    public var hidden: Hidden = .false
    /// Only persons without a display name.
    public var unnamedOnly = false
    /// Only persons with at least this many photos, and named persons whatever their count (naming someone says
    /// they matter). The default leaves out the many one-photo strangers of a library; 1 lists everyone.
    public var minPhotos = 2

    public init() {}
}

/// One face (a stored embedding) as corrections and the review queue show it.
public struct FaceView: Content, Sendable, Equatable {
    public var faceID: Int64
    public var photoID: Int64
    public var path: String
    public var faceIndex: Int
    /// Nil (`null`): an unsorted face.
    @NullWhenAbsent public var personID: Int64?
    public var bbox: BoundingBox
    public var confidence: Double
    public var similarity: Double?
    /// Placed by a user: never moves by itself.
    public var confirmed: Bool
    public var runnerUpPersonID: Int64?
    public var runnerUpSimilarity: Double?

    enum CodingKeys: String, CodingKey {
        case path, bbox, confidence, similarity, confirmed
        case faceID = "face_id"
        case photoID = "photo_id"
        case faceIndex = "face_index"
        case personID = "person_id"
        case runnerUpPersonID = "runner_up_person_id"
        case runnerUpSimilarity = "runner_up_similarity"
    }
}

/// GET /person/{id}/faces.
public struct FacePage: Content, Sendable {
    public var faces: [FaceView]
    public var nextAfterID: Int64?

    enum CodingKeys: String, CodingKey {
        case faces
        case nextAfterID = "next_after_id"
    }
}

/// What a review item asks: "is this face person `personID`?". Either answer changes the library.
public struct ReviewQuestion: Content, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// About the face's own person, which has other faces: yes confirms the face there
        /// (`POST /faces/{id}/confirm`), no takes it out (`POST /faces/{id}/reject`).
        case samePerson = "same_person"
        /// About the face's runner-up, asked when the face is its person's only face (confirming a person of one
        /// face, or taking its only face out, would settle nothing): yes moves the face to the runner-up
        /// (`POST /faces/move` with `to_person_id`), no records that it is not the runner-up
        /// (`POST /faces/{id}/reject` with `{"person_id": runner-up}`).
        case runnerUp = "runner_up"
    }

    public var kind: Kind
    /// The person asked about: the face's own person or its runner-up.
    public var personID: Int64

    public init(kind: Kind, personID: Int64) {
        self.kind = kind
        self.personID = personID
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case personID = "person_id"
    }
}

/// One entry of GET /review: a face, how close its decision was, and the question to answer about it.
public struct ReviewItem: Content, Sendable {
    public var face: FaceView
    /// Similarity to its person minus similarity to the runner-up (for a face that started its person, the
    /// joining threshold stands in for the first): the smaller, the less certain.
    public var gap: Double
    public var question: ReviewQuestion

    public func encode(to encoder: any Encoder) throws {
        try face.encode(to: encoder)
        var container = encoder.container(keyedBy: ItemKey.self)
        try container.encode(gap, forKey: .gap)
        try container.encode(question, forKey: .question)
    }

    public init(face: FaceView, gap: Double, question: ReviewQuestion) {
        self.face = face
        self.gap = gap
        self.question = question
    }

    public init(from decoder: any Decoder) throws {
        face = try FaceView(from: decoder)
        let container = try decoder.container(keyedBy: ItemKey.self)
        gap = try container.decode(Double.self, forKey: .gap)
        question = try container.decode(ReviewQuestion.self, forKey: .question)
    }

    private enum ItemKey: String, CodingKey { case gap, question }
}

/// GET /review.
public struct ReviewPage: Content, Sendable {
    public var faces: [ReviewItem]
}

/// PATCH /person/{id}: a field left out stays as it is; `"display_name": null` clears the name.
public struct PersonUpdate: Content, Sendable {
    /// nil: unchanged; `.some(nil)`: cleared.
    public var displayName: String??
    public var hidden: Bool?

    public init(displayName: String?? = nil, hidden: Bool? = nil) {
        self.displayName = displayName
        self.hidden = hidden
    }

    enum CodingKeys: String, CodingKey {
        case hidden
        case displayName = "display_name"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if container.contains(.displayName) {
            displayName = .some(try container.decodeNil(forKey: .displayName) ? nil : try container.decode(String.self, forKey: .displayName))
        }
        hidden = try container.decodeIfPresent(Bool.self, forKey: .hidden)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let displayName { try container.encode(displayName, forKey: .displayName) }
        try container.encodeIfPresent(hidden, forKey: .hidden)
    }
}

/// POST /persons/merge.
public struct MergeRequest: Content, Sendable {
    public var personIDs: [Int64]
    /// The survivor; default the oldest (lowest) id.
    public var into: Int64?

    public init(personIDs: [Int64], into: Int64? = nil) {
        self.personIDs = personIDs
        self.into = into
    }

    enum CodingKeys: String, CodingKey {
        case into
        case personIDs = "person_ids"
    }
}

public struct MergeResult: Content, Sendable {
    public var person: PersonView
    /// The absorbed ids, now redirects to `person`.
    public var merged: [Int64]
}

/// POST /faces/move: to `toPersonID`, or to a new person when it is nil.
public struct MoveRequest: Content, Sendable {
    public var faceIDs: [Int64]
    public var toPersonID: Int64?

    public init(faceIDs: [Int64], toPersonID: Int64?) {
        self.faceIDs = faceIDs
        self.toPersonID = toPersonID
    }

    enum CodingKeys: String, CodingKey {
        case faceIDs = "face_ids"
        case toPersonID = "to_person_id"
    }
}

public struct MoveResult: Content, Sendable, Equatable {
    public var personID: Int64
    public var createdPerson: Bool
    public var faceIDs: [Int64]

    enum CodingKeys: String, CodingKey {
        case personID = "person_id"
        case createdPerson = "created_person"
        case faceIDs = "face_ids"
    }
}

/// POST /faces/{id}/reject, body optional: the person the face is not. Absent, null or the face's own person: the
/// face leaves its person; another person: only recorded (the face stays where it is).
public struct RejectRequest: Content, Sendable {
    public var personID: Int64?

    public init(personID: Int64? = nil) {
        self.personID = personID
    }

    enum CodingKeys: String, CodingKey {
        case personID = "person_id"
    }
}

/// POST /faces/{id}/reject: where the face is after "not this person".
public struct RejectResult: Content, Sendable, Equatable {
    public var faceID: Int64
    /// The person the face is not.
    public var rejectedPersonID: Int64
    /// The face's person now (unchanged when the rejected person was another one; `null` for an unsorted face).
    @NullWhenAbsent public var personID: Int64?
    public var createdPerson: Bool

    enum CodingKeys: String, CodingKey {
        case faceID = "face_id"
        case rejectedPersonID = "rejected_person_id"
        case personID = "person_id"
        case createdPerson = "created_person"
    }
}
