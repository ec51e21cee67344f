/// What a user asks of the library: photos of some people (all of them together, or any of them), taken within a
/// date range, in id or taken order, one keyset page at a time.
public struct PhotoQuery: Sendable, Equatable {
    /// `all`: every listed person is in the photo; `any`: at least one is.
    public enum Match: String, Sendable, CaseIterable, Codable {
        case all, any
    }

    /// `id`: the order photos were added; `taken`: oldest first; `takenDesc`: newest first (ties by id, same direction).
    public enum Order: String, Sendable, CaseIterable, Codable {
        case id
        case taken
        case takenDesc = "taken_desc"

        public var byTaken: Bool { self != .id }
        public var descending: Bool { self == .takenDesc }
    }

    /// Persons by id (redirects already followed by the caller); empty: every photo.
    public var persons: [Int64]
    public var match: Match
    /// First and last day taken, both included, on the photo's own wall clock.
    public var from: CalendarDay?
    public var to: CalendarDay?
    public var order: Order
    /// Where the previous page ended (its `next_after`).
    public var after: PhotoCursor?
    public var limit: Int

    public static let maxPersons = 20
    public static let maxLimit = 5000

    public init(persons: [Int64] = [], match: Match = .all, from: CalendarDay? = nil, to: CalendarDay? = nil,
                order: Order = .id, after: PhotoCursor? = nil, limit: Int = 100) {
        self.persons = persons
        self.match = match
        self.from = from
        self.to = to
        self.order = order
        self.after = after
        self.limit = limit
    }

    /// Every refusal names what to change.
    public func validate() throws(PhotoQueryError) {
        guard persons.count <= Self.maxPersons else { throw .invalid("at most \(Self.maxPersons) persons, got \(persons.count)") }
        guard Set(persons).count == persons.count else { throw .invalid("persons lists a person twice") }
        guard (1...Self.maxLimit).contains(limit) else { throw .invalid("limit must be 1...\(Self.maxLimit), got \(limit)") }
        if let from, let to, to < from { throw .invalid("from (\(from)) is after to (\(to))") }
        if let after {
            guard (after.taken != nil) == order.byTaken else {
                throw .invalid("after \(after) is a cursor of another order than \(order.rawValue): pass the next_after of the same query")
            }
        }
    }

    /// The smallest `taken_at` inside the range, and the largest (a wall-clock text compares as it reads).
    public var takenBounds: (lower: String?, upper: String?) {
        (from.map { "\($0)T00:00:00" }, to.map { "\($0)T23:59:59" })
    }

    /// Where a photo stands in `order`.
    public func key(of photo: PhotoKey) -> PhotoCursor {
        PhotoCursor(taken: order.byTaken ? photo.taken : nil, id: photo.id)
    }

    /// The first `count` distinct photos of the union of per-person lists, each already in `order` and each holding
    /// at least `count` entries where it has them. Exact: a photo among the union's first `count` is among the first
    /// `count` of every list that holds it, since every photo before it in that list is also before it in the union.
    public func union(of lists: [[PhotoKey]], count: Int) -> [PhotoKey] {
        var seen = Set<Int64>()
        let merged = lists.joined().sorted { precedes($0, $1) }.filter { seen.insert($0.id).inserted }
        return Array(merged.prefix(count))
    }

    /// `a` comes before `b` in `order`.
    public func precedes(_ a: PhotoKey, _ b: PhotoKey) -> Bool {
        switch order {
        case .id: a.id < b.id
        case .taken: (a.taken, a.id) < (b.taken, b.id)
        case .takenDesc: (a.taken, a.id) > (b.taken, b.id)
        }
    }
}

/// A photo as the orders see it: its id and its `taken_at` wall-clock text.
public struct PhotoKey: Sendable, Equatable {
    public let id: Int64
    public let taken: String

    public init(id: Int64, taken: String) {
        self.id = id
        self.taken = taken
    }
}

/// A keyset position: the last photo of a page, as `123` (id order) or `2019-06-01T14:03:22,123` (taken orders).
public struct PhotoCursor: Sendable, Equatable, CustomStringConvertible {
    public let taken: String?
    public let id: Int64

    public init(taken: String?, id: Int64) {
        self.taken = taken
        self.id = id
    }

    /// Nil unless `text` is a cursor this type wrote.
    public init?(_ text: String) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            guard let id = Int64(parts[0]), id >= 0 else { return nil }
            self.init(taken: nil, id: id)
        case 2:
            guard let id = Int64(parts[1]), id >= 0, TakenDate.isWallClock(String(parts[0])) else { return nil }
            self.init(taken: String(parts[0]), id: id)
        default:
            return nil
        }
    }

    public var description: String { taken.map { "\($0),\(id)" } ?? "\(id)" }
}

/// A photo query that cannot be answered as asked.
public enum PhotoQueryError: Error, CustomStringConvertible, Equatable {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let reason): reason
        }
    }
}
