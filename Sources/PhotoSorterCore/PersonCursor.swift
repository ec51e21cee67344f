/// A keyset position in the persons list (most photos first, then the newest id): the last person of a page, as
/// `12,345` (its photo count, its id). The next page starts after it, however deep, at the cost of the first.
public struct PersonCursor: Sendable, Equatable, CustomStringConvertible {
    public let photoCount: Int
    public let id: Int64

    public init(photoCount: Int, id: Int64) {
        self.photoCount = photoCount
        self.id = id
    }

    /// Nil unless `text` is a cursor this type wrote.
    public init?(_ text: String) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, let count = Int(parts[0]), count >= 0, let id = Int64(parts[1]), id >= 0 else { return nil }
        self.init(photoCount: count, id: id)
    }

    public var description: String { "\(photoCount),\(id)" }
}
