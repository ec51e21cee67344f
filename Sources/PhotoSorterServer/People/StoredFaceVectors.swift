import Foundation
import PhotoSorterCore
import SQLKit

/// The vectors of a re-cluster's faces, read from `embeddings` by id, a chunk at a time, as `Reclustering.run`
/// reaches them: a million 512-d vectors are 2 GiB, which a re-cluster no longer holds (bench/RESULTS.md).
struct StoredFaceVectors: FaceVectors, Sendable {
    /// Face ids by position in the re-cluster's input.
    let ids: [Int64]
    let db: any SQLDatabase

    /// A face was removed between the read of the faces and the read of its vector (outside a transaction).
    struct FaceRemoved: Error, CustomStringConvertible {
        let faceID: Int64
        var description: String { "face \(faceID) was removed while the re-cluster read the library" }
    }

    /// The same faces, read through `db` (the transaction that writes the outcome).
    func reading(on db: any SQLDatabase) -> StoredFaceVectors {
        StoredFaceVectors(ids: ids, db: db)
    }

    func vectors(at positions: [Int]) async throws -> [Embedding] {
        let wanted = positions.map { ids[$0] }
        guard !wanted.isEmpty else { return [] }
        var byID: [Int64: Embedding] = [:]
        byID.reserveCapacity(wanted.count)
        for (id, vector) in try await db.raw("SELECT id, vector FROM embeddings WHERE id IN (\(binds: wanted))").decodedRows({ row in
            (try row.decode(column: "id", as: Int64.self), try EmbeddingCodec.decode(bytes: try row.decode(column: "vector", as: Data.self)))
        }) {
            byID[id] = vector
        }
        return try wanted.map { id in
            guard let vector = byID[id] else { throw FaceRemoved(faceID: id) }
            return vector
        }
    }
}
