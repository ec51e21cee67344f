import Vapor

extension Request {
    /// The query value `name` as a `T`, nil when the query does not name it. A value that is not a `T` (or a name
    /// given twice) is a 400, never silently the default.
    func optionalQuery<T: Decodable>(_ type: T.Type, _ name: String) throws -> T? {
        let occurrences = (url.query ?? "").split(separator: "&").filter { pair in
            let key = String(pair.prefix { $0 != "=" }).removingPercentEncoding ?? ""
            return key == name || key.hasPrefix(name + "[")
        }.count
        if occurrences == 0 { return nil }
        guard occurrences == 1, let value = query[T.self, at: name] else {
            throw PhotoSorterError.invalidQuery("query parameter \(name) must be a single \(T.self) value")
        }
        return value
    }

    /// The query value `name` as positive ids separated by commas (`12,40`), nil when the query does not name it;
    /// anything else is a 400 naming `what` the ids are.
    func idListQuery(_ name: String, of what: String) throws -> [Int64]? {
        guard let raw = try optionalQuery(String.self, name) else { return nil }
        return try raw.split(separator: ",", omittingEmptySubsequences: false).map { part in
            guard let id = Int64(part), id > 0 else {
                throw PhotoSorterError.invalidQuery("\(name) must be \(what) ids separated by commas, got \(raw)")
            }
            return id
        }
    }

    /// A path parameter that must be a positive integer id (422 otherwise).
    func int64Parameter(_ name: String) throws -> Int64 {
        guard let raw = parameters.get(name), let value = Int64(raw), value > 0 else {
            throw PhotoSorterError.invalidRequest("\(name) must be a positive integer, got \(parameters.get(name) ?? "nothing")")
        }
        return value
    }
}
