import PhotoSorterCore
import Vapor

/// Body of POST /callback/photo-processed, as the ML service sends it (snake_case field names).
public struct CallbackPayload: Content, Sendable {
    public struct Detection: Codable, Sendable {
        public var bbox: BoundingBox
        public var embedding: String
        public var confidence: Double?
        public var suggestedPersonID: Int64?
        /// Base64 JPEG: a small square crop around the face, for the web page.
        public var thumbnail: String?
        /// The name an XMP face region of the photo (its sidecar or its own metadata) gives this face; the face may
        /// be one the detector missed, embedded from the region's box (`source` "xmp_region").
        public var xmpName: String?
        /// The embedding's length before L2 normalisation: below the model's `unsureBelowNorm` the face is unsure.
        public var embeddingNorm: Double?

        enum CodingKeys: String, CodingKey {
            case bbox, embedding, confidence, thumbnail
            case suggestedPersonID = "suggested_person_id"
            case xmpName = "xmp_name"
            case embeddingNorm = "embedding_norm"
        }
    }

    /// An entry of `new_persons`: the ML service's own record of faces it matched to no one. The service decides
    /// persons by its identity rule and does not keep these, but decodes them so that a wrongly typed entry is refused
    /// as the API document says (400), not silently accepted.
    struct NewPerson: Decodable {
        var tempID: String?
        var embedding: String?
        var suggestedDisplayName: String?
        var detectionIndex: Int?

        enum CodingKeys: String, CodingKey {
            case embedding
            case tempID = "temp_id"
            case suggestedDisplayName = "suggested_display_name"
            case detectionIndex = "detection_index"
        }
    }

    public struct Meta: Codable, Sendable {
        public var modelVersion: String?
        public var timings: [String: Double]?

        enum CodingKeys: String, CodingKey {
            case timings
            case modelVersion = "model_version"
        }
    }

    public var photoID: Int64
    public var path: String?
    public var callbackID: String?
    public var status: PhotoStatus
    public var error: String?
    public var width: Int?
    public var height: Int?
    /// Counter-clockwise quarter turns the ML service gave a photo it found lying on its side (0–3): width,
    /// height and boxes are of the turned photo.
    public var quarterTurns: Int
    public var detections: [Detection]
    /// When the photo was taken, from its EXIF or XMP; nil when it carries no date (the file's time is used).
    public var taken: TakenDate?
    public var meta: Meta?
    /// Base64 JPEG of the whole photo, downscaled, with its size: the web page shows it instead of the file.
    public var preview: String?
    public var previewWidth: Int?
    public var previewHeight: Int?

    enum CodingKeys: String, CodingKey {
        case path, status, error, width, height, detections, meta, preview, taken
        case previewWidth = "preview_width"
        case previewHeight = "preview_height"
        case photoID = "photo_id"
        case quarterTurns = "quarter_turns"
        case callbackID = "callback_id"
    }

    /// Keys decoded for validation only (not stored, not encoded).
    private enum CheckedKeys: String, CodingKey {
        case newPersons = "new_persons"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        photoID = try c.decode(Int64.self, forKey: .photoID)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        callbackID = try c.decodeIfPresent(String.self, forKey: .callbackID)
        status = try c.decode(PhotoStatus.self, forKey: .status)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        width = try c.decodeIfPresent(Int.self, forKey: .width)
        height = try c.decodeIfPresent(Int.self, forKey: .height)
        quarterTurns = try c.decodeIfPresent(Int.self, forKey: .quarterTurns) ?? 0
        guard (0...3).contains(quarterTurns) else {
            throw DecodingError.dataCorruptedError(forKey: .quarterTurns, in: c, debugDescription: "quarter_turns must be 0, 1, 2 or 3")
        }
        detections = try c.decodeIfPresent([Detection].self, forKey: .detections) ?? []
        taken = try c.decodeIfPresent(TakenDate.self, forKey: .taken)
        meta = try c.decodeIfPresent(Meta.self, forKey: .meta)
        preview = try c.decodeIfPresent(String.self, forKey: .preview)
        previewWidth = try c.decodeIfPresent(Int.self, forKey: .previewWidth)
        previewHeight = try c.decodeIfPresent(Int.self, forKey: .previewHeight)
        _ = try decoder.container(keyedBy: CheckedKeys.self).decodeIfPresent([NewPerson].self, forKey: .newPersons)
    }

    public init(photoID: Int64, path: String?, callbackID: String?, status: PhotoStatus, error: String? = nil,
                width: Int? = nil, height: Int? = nil, detections: [Detection] = [], meta: Meta? = nil) {
        self.photoID = photoID
        self.path = path
        self.callbackID = callbackID
        self.status = status
        self.error = error
        self.width = width
        self.height = height
        self.quarterTurns = 0
        self.detections = detections
        self.meta = meta
    }
}

/// Answer of the callback: which persons this photo created. Replayed verbatim for a duplicate callback.
public struct CallbackResponse: Content, Sendable, Equatable {
    public var ok: Bool
    public var createdPersonIDs: [Int64]
    public var personIDs: [Int64]

    enum CodingKeys: String, CodingKey {
        case ok
        case createdPersonIDs = "created_person_ids"
        case personIDs = "person_ids"
    }
}
