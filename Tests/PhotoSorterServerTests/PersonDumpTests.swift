import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// GET /person-dump, what the ML service reads to suggest persons: protected by the shared secret, paged, compact
/// when asked, and able to serve only what changed since a sequence number.
class PersonDumpTests: DatabaseTestCase {
    /// GET /person-dump needs the shared secret, pages by since_id and compresses when asked.
    func testPersonDumpIsProtectedAndPaged() async throws {
        try await TestService.run(flavor, backgroundWork: false, tune: { $0.sharedSecret = "s3cret" }) { service in
            // The callback needs the secret too; results are fed directly with the header.
            await service.services.ingest.waitForScan(try await service.ingest(URL.faces("face_recognition_examples/kit_harington")))
            let anonymous = try await service.request(.GET, "/person-dump")
            XCTAssertEqual(anonymous.status, .unauthorized)
            let secret = [("X-Photo-Sorter-Secret", "s3cret")]
            let photos = try await service.photos()
            for (index, photo) in photos.enumerated() {
                let faces = EmbeddingFixture.shared.photo("face_recognition_examples/kit_harington/" + photo.filename)!.faces
                let other = EmbeddingFixture.shared.photos(inSet: "lfw_small")[index * 9].faces
                let reply = try await service.request(.POST, "/callback/photo-processed",
                                                      body: FakeMLService.callback(photoID: photo.photoID, callbackID: "d\(index)", faces: faces + other),
                                                      headers: secret)
                XCTAssertEqual(reply.status, .ok, reply.reason)
            }
            // Not gzipped even when asked: near-random vector bytes barely compress.
            let first = try await service.request(.GET, "/person-dump?since_id=0&limit=2", headers: secret + [("Accept-Encoding", "gzip")])
            XCTAssertEqual(first.status, .ok)
            XCTAssertNil(first.headers.first(name: "Content-Encoding"))
            let plain = try await service.request(.GET, "/person-dump?since_id=0&limit=2", headers: secret).decode(PersonDump.self)
            XCTAssertEqual(plain.embeddingEncoding, .f32)
            // Compact: float16, half the bytes, the same direction to a thousandth.
            let half = try await service.request(.GET, "/person-dump?since_id=0&limit=2&encoding=f16", headers: secret).decode(PersonDump.self)
            XCTAssertEqual(half.embeddingEncoding, .f16)
            XCTAssertEqual(half.persons.map(\.personID), plain.persons.map(\.personID))
            for (compact, exact) in zip(half.persons, plain.persons) {
                let bytes = try XCTUnwrap(Data(base64Encoded: compact.representativeEmbedding))
                XCTAssertEqual(bytes.count, 128 * 2)
                let values = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float16.self)).map(Float.init) }
                let similarity = try Embedding(normalising: values).similarity(to: try EmbeddingCodec.decode(base64: exact.representativeEmbedding))
                XCTAssertGreaterThan(similarity, 0.9999)
            }
            let badEncoding = try await service.request(.GET, "/person-dump?encoding=f8", headers: secret)
            XCTAssertEqual(badEncoding.status, .unprocessableEntity)
            XCTAssertEqual(plain.persons.count, 2)
            guard plain.persons.count == 2 else { return }
            XCTAssertTrue(plain.hasMore)
            let rest = try await service.request(.GET, "/person-dump?since_id=\(plain.nextSinceID)&limit=100", headers: secret).decode(PersonDump.self)
            XCTAssertFalse(rest.hasMore)
            XCTAssertTrue(rest.persons.allSatisfy { $0.personID > plain.nextSinceID })
            let total = plain.persons.count + rest.persons.count
            XCTAssertEqual(total, service.services.identity.personCount)
            let embedding = try EmbeddingCodec.decode(base64: plain.persons[0].representativeEmbedding)
            XCTAssertEqual(embedding.values.count, 128)
            let withoutSecret = try await service.request(.GET, "/person/\(plain.persons[0].personID)?include_embedding=true")
            XCTAssertEqual(withoutSecret.status, .unauthorized)
            let withSecret = try await service.request(.GET, "/person/\(plain.persons[0].personID)?include_embedding=true", headers: secret)
            XCTAssertNotNil(try withSecret.decode(PersonView.self).representativeEmbedding)
        }
    }

    /// The person dump serves what changed since a sequence number: after a listing, only looks whose
    /// representative or owner changed (new faces, a merge) come back — a merge keeps the absorbed person's look,
    /// now the survivor's; an unknown epoch (the instance reloaded) answers `reset`.
    func testPersonDumpServesChangesSinceASequence() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            let listing = try await service.request(.GET, "/person-dump?since_id=0").decode(PersonDump.self)
            let obama = try XCTUnwrap(listing.persons.first).personID
            let none = try await service.request(.GET, "/person-dump?since_seq=\(listing.seq)&epoch=\(listing.epoch)").decode(PersonDump.self)
            XCTAssertEqual(none.persons.count, 0, "nothing changed since the listing")
            XCTAssertFalse(none.reset)

            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let grown = try await service.request(.GET, "/person-dump?since_seq=\(none.seq)&epoch=\(listing.epoch)").decode(PersonDump.self)
            let biden = try XCTUnwrap(grown.persons.first { $0.personID != obama }).personID
            XCTAssertEqual(grown.persons.map(\.personID), [biden], "only the new person changed")

            _ = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [obama, biden], into: obama)).decode(MergeResult.self)
            let merged = try await service.request(.GET, "/person-dump?since_seq=\(grown.seq)&epoch=\(listing.epoch)").decode(PersonDump.self)
            XCTAssertEqual(merged.persons.map(\.personID), [obama], "the absorbed person's look now belongs to the survivor")
            XCTAssertEqual(merged.persons.map(\.lookID), [biden])
            XCTAssertEqual(merged.removed, [], "a merge keeps the absorbed look")
            XCTAssertGreaterThan(merged.seq, grown.seq)
            let relisted = try await service.request(.GET, "/person-dump?since_id=0").decode(PersonDump.self)
            XCTAssertEqual(relisted.persons.map(\.lookID), [obama, biden].sorted())
            XCTAssertEqual(Set(relisted.persons.map(\.personID)), [obama])

            let stale = try await service.request(.GET, "/person-dump?since_seq=0&epoch=another").decode(PersonDump.self)
            XCTAssertTrue(stale.reset)
            XCTAssertEqual(stale.epoch, listing.epoch)
            let noEpoch = try await service.request(.GET, "/person-dump?since_seq=0")
            XCTAssertEqual(noEpoch.status, .unprocessableEntity)
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class PersonDumpTestsOnPostgres: PersonDumpTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testPersonDumpIsProtectedAndPaged() async throws { try await super.testPersonDumpIsProtectedAndPaged() }
}
