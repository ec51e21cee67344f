import PhotoSorterCore
import Vapor

extension Request {
    /// The photo query of GET /photos and GET /person/{id}/photos: `persons=12,40`, `match=all|any`,
    /// `from=YYYY-MM-DD`, `to=YYYY-MM-DD` (both included), `order=id|taken|taken_desc`, `after=` (a page's
    /// `next_after`) or `after_id=` (id order), `limit=` (`defaultLimit` when absent; clamped to `clampLimit` when
    /// given, else left for the caller's check).
    func photoQuery(defaultLimit: Int, clampLimit: ClosedRange<Int>? = nil) throws -> PhotoQuery {
        var query = PhotoQuery()
        query.persons = try idListQuery("persons", of: "person") ?? []
        query.match = try enumQuery(PhotoQuery.Match.self, "match") ?? .all
        query.order = try enumQuery(PhotoQuery.Order.self, "order") ?? .id
        query.from = try dayQuery("from")
        query.to = try dayQuery("to")
        if let after = try optionalQuery(String.self, "after") {
            guard let cursor = PhotoCursor(after) else { throw PhotoSorterError.invalidQuery("after must be a next_after of an earlier page, got \(after)") }
            query.after = cursor
        }
        if let afterID = try optionalQuery(Int64.self, "after_id") {
            guard query.after == nil, query.order == .id else {
                throw PhotoSorterError.invalidQuery("after_id pages the id order only, and not together with after")
            }
            query.after = PhotoCursor(taken: nil, id: afterID)
        }
        query.limit = try optionalQuery(Int.self, "limit") ?? defaultLimit
        if let clampLimit { query.limit = min(max(query.limit, clampLimit.lowerBound), clampLimit.upperBound) }
        return query
    }

    private func enumQuery<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ name: String) throws -> T? where T.RawValue == String {
        guard let raw = try optionalQuery(String.self, name) else { return nil }
        guard let value = T(rawValue: raw) else {
            throw PhotoSorterError.invalidQuery("\(name) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got \(raw)")
        }
        return value
    }

    private func dayQuery(_ name: String) throws -> CalendarDay? {
        guard let raw = try optionalQuery(String.self, name) else { return nil }
        guard let day = CalendarDay(raw) else { throw PhotoSorterError.invalidQuery("\(name) must be a date YYYY-MM-DD, got \(raw)") }
        return day
    }
}
