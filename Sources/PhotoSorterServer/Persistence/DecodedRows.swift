import NIOConcurrencyHelpers
import SQLKit

extension SQLQueryFetcher {
    /// The rows of the query, each made into a `T` by `decode` as it arrives; unlike `all()`, no row is held once
    /// decoded, so a query over every face's vector keeps only what `decode` makes of each (a re-cluster reads them
    /// all). The first error `decode` throws is thrown once the query has ended.
    func decodedRows<T: Sendable>(_ decode: @escaping @Sendable (any SQLRow) throws -> T) async throws -> [T] {
        let read = NIOLockedValueBox((values: [T](), error: (any Error)?.none))
        try await run { row in
            read.withLockedValue { read in
                guard read.error == nil else { return }
                do { read.values.append(try decode(row)) } catch { read.error = error }
            }
        }
        return try read.withLockedValue { read in
            if let error = read.error { throw error }
            return read.values
        }
    }
}
