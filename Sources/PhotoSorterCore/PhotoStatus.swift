/// Processing state of a photo, as stored in `photos.status` (the API's status values).
public enum PhotoStatus: String, Codable, Sendable, CaseIterable {
    case ready = "READY"
    case processing = "PROCESSING"
    case processed = "PROCESSED"
    case failed = "FAILED"
    /// The file vanished from its scanned root: hidden, its faces out of every person, kept until it returns (at
    /// any path, recognised by its content) or is pruned.
    case missing = "MISSING"
}
