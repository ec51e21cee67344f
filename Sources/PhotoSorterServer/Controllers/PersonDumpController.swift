import PhotoSorterCore
import Vapor

/// GET /person-dump: every person's representative embedding, for the ML service's suggestions.
struct PersonDumpController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        // Not gzipped: the vectors are near-random bytes, and gzip saved 28 % of a 100,000-person dump for five
        // times its time (26 s instead of 5). `encoding=f16` halves it instead.
        routes.responseCompression(.disable).get("person-dump", use: dump)
    }

    /// Every person, paged by `since_id` and `limit` (max 10000); or, with `since_seq` and `epoch` from an earlier
    /// answer, only what changed since (and `removed` ids). `encoding=f16` sends the vectors as float16. Shared
    /// secret when set.
    func dump(req: Request) async throws -> PersonDump {
        try req.requireSecret()
        let limit = try req.optionalQuery(Int.self, "limit") ?? 5000
        guard (1...10_000).contains(limit) else { throw PhotoSorterError.invalidRequest("limit must be 1...10000") }
        let encodingName = try req.optionalQuery(String.self, "encoding") ?? EmbeddingEncoding.f32.rawValue
        guard let encoding = EmbeddingEncoding(rawValue: encodingName) else {
            throw PhotoSorterError.invalidRequest("encoding must be f32 or f16, got \(encodingName)")
        }
        let sinceID = try req.optionalQuery(Int64.self, "since_id") ?? 0
        if let sinceSeq = try req.optionalQuery(Int64.self, "since_seq") {
            guard let epoch = try req.optionalQuery(String.self, "epoch") else {
                throw PhotoSorterError.invalidRequest("since_seq needs the epoch of the answer it came from")
            }
            return try await req.photoSorter.identity.dumpChanges(sinceSeq: sinceSeq, epoch: epoch, limit: limit, encoding: encoding)
        }
        return try await req.photoSorter.identity.dump(sinceID: sinceID, limit: limit, encoding: encoding)
    }
}
