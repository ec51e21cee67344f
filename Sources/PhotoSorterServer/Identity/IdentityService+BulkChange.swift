import Foundation
import PhotoSorterCore
import SQLKit

extension IdentityService {
    /// A bulk change of faces and persons (a reprocess replacing every face): `body` runs in one transaction under
    /// this instance's lock and the cross-instance lock; when it returns a result, the generation is bumped and the
    /// index reloaded inside the same transaction, before the commit, so nobody sees the change with the old
    /// persons. Nil from `body` changes nothing. If the transaction fails, the index is reloaded from what stayed.
    /// Other instances reload theirs at their next commit (the generation changed).
    func replaceAll<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T?) async throws -> T? {
        try await lock.withLock {
            do {
                return try await self.database.transaction { tx -> T? in
                    try await self.lockAcrossInstances(tx)
                    guard let result = try await body(tx) else { return nil }
                    _ = try await Self.bumpGeneration(on: tx)
                    try await self.reload(on: tx)
                    return result
                }
            } catch {
                try? await self.reload()
                throw error
            }
        }
    }
}
