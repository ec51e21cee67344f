/// Processing state of a photo, as stored in `photos.status` (the API's status values).
public enum PhotoStatus: String, Codable, Sendable, CaseIterable {
    case ready = "READY"
    case processing = "PROCESSING"
    case processed = "PROCESSED"
    case failed = "FAILED"
}
