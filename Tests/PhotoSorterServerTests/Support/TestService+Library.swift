import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import SQLKit
import XCTest

/// What several concerns' tests ask of the library a `TestService` holds: a person's faces, two persons to merge, a
/// re-cluster or reprocess run to its end, and the checks that corrections changed nothing or kept derived data
/// consistent.
extension TestService {
    func faces(of person: Int64) async throws -> [FaceView] {
        try await request(.GET, "/person/\(person)/faces?limit=1000").decode(FacePage.self).faces
    }

    /// Two of `candidates` that no photo shows together (so they can be merged), the first such pair in order.
    func twoPersonsNeverTogether(_ candidates: [Int64]) async throws -> (Int64, Int64) {
        var photos: [Int64: Set<Int64>] = [:]
        for person in candidates {
            photos[person] = Set(try await request(.GET, "/person/\(person)/photos?limit=1000").decode(PhotoPage.self).photos.map(\.photoID))
        }
        for (i, first) in candidates.enumerated() {
            for second in candidates.dropFirst(i + 1) where photos[first]!.isDisjoint(with: photos[second]!) { return (first, second) }
        }
        throw TestService.UnexpectedReply(description: "every two of persons \(candidates) share a photo")
    }

    /// POST /recluster, then GET /recluster/{id} until the job is done.
    func recluster() async throws -> ReclusterResult {
        let started = try await request(.POST, "/recluster")
        XCTAssertEqual(started.status, .accepted, started.reason)
        let jobID = try started.decode(ReclusterStatus.self).jobID
        for _ in 0..<600 {
            let status = try await request(.GET, "/recluster/\(jobID)").decode(ReclusterStatus.self)
            if status.done {
                XCTAssertEqual(status.status, "COMPLETED", status.error ?? "")
                return try XCTUnwrap(status.result)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestService.UnexpectedReply(description: "recluster \(jobID) did not finish in 60 s")
    }

    /// POST /reprocess, then GET /reprocess/{id} until the job is done.
    func reprocess(body: String, timeout: Double = 60) async throws -> ReprocessStatus {
        let started = try await request(.POST, "/reprocess", body: Data(body.utf8))
        XCTAssertEqual(started.status, .accepted, started.reason)
        let jobID = try started.decode(ReprocessStatus.self).jobID
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let status = try await request(.GET, "/reprocess/\(jobID)").decode(ReprocessStatus.self)
            if status.done { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTFail("reprocess \(jobID) not done after \(timeout) s")
        throw PhotoSorterError.conflict("reprocess timed out")
    }

    /// The person of each confirmed face, by face id.
    func confirmedFaces() async throws -> [Int64: Int64] {
        try await services.database.sql.raw("SELECT id, person_id FROM embeddings WHERE confirmed = \(true)").all()
            .reduce(into: [:]) { $0[try $1.decode(column: "id", as: Int64.self)] = try $1.decode(column: "person_id", as: Int64.self) }
    }

    /// The person of every face, by face id.
    func facePersons() async throws -> [Int64: Int64?] {
        try await services.database.sql.raw("SELECT id, person_id FROM embeddings").all()
            .reduce(into: [:]) { $0[try $1.decode(column: "id", as: Int64.self)] = try $1.decode(column: "person_id", as: Int64?.self) }
    }

    /// Every row corrections touch, as text: equal results mean nothing changed.
    func correctionRows() async throws -> [String] {
        let sql = services.database.sql
        var lines: [String] = []
        for query: SQLQueryString in [
            "SELECT id, person_id, confirmed, similarity, runner_up_person_id FROM embeddings ORDER BY id",
            "SELECT id, display_name, hidden, merged_into, face_count, photo_count FROM persons ORDER BY id",
            "SELECT embedding_id, person_id FROM face_rejections ORDER BY embedding_id, person_id",
            "SELECT photo_id, person_id FROM photo_persons ORDER BY photo_id, person_id",
            "SELECT id, person_ids FROM photos ORDER BY id",
        ] {
            for row in try await sql.raw(query).all() {
                lines.append(row.allColumns.map { "\($0)=\(Self.describe(row, $0))" }.joined(separator: " "))
            }
        }
        return lines
    }

    /// A column's value as text, whatever its type.
    private static func describe(_ row: any SQLRow, _ column: String) -> String {
        if (try? row.decodeNil(column: column)) == true { return "nil" }
        if let value = try? row.decode(column: column, as: Int64.self) { return "\(value)" }
        if let value = try? row.decode(column: column, as: Double.self) { return "\(value)" }
        if let value = try? row.decode(column: column, as: Bool.self) { return "\(value)" }
        return (try? row.decode(column: column, as: String.self)) ?? "?"
    }

    /// Derived data agrees with the faces: counts, photo_persons, photos.person_ids, and the in-memory index with
    /// its looks and their owners.
    func assertConsistent(file: StaticString = #filePath, line: UInt = #line) async throws {
        let sql = services.database.sql
        var facesOf: [Int64: Int] = [:], photosOf: [Int64: Set<Int64>] = [:], personsOfPhoto: [Int64: [Int64]] = [:]
        for row in try await sql.raw("SELECT photo_id, person_id FROM embeddings WHERE person_id IS NOT NULL ORDER BY photo_id, face_index").all() {
            let photo = try row.decode(column: "photo_id", as: Int64.self), person = try row.decode(column: "person_id", as: Int64.self)
            facesOf[person, default: 0] += 1
            photosOf[person, default: []].insert(photo)
            if personsOfPhoto[photo]?.contains(person) != true { personsOfPhoto[photo, default: []].append(person) }
        }
        for row in try await sql.raw("SELECT id, face_count, photo_count, merged_into FROM persons").all() {
            let id = try row.decode(column: "id", as: Int64.self)
            XCTAssertEqual(try row.decode(column: "face_count", as: Int.self), facesOf[id] ?? 0, "face_count of \(id)", file: file, line: line)
            XCTAssertEqual(try row.decode(column: "photo_count", as: Int.self), photosOf[id]?.count ?? 0, "photo_count of \(id)", file: file, line: line)
            if try row.decode(column: "merged_into", as: Int64?.self) != nil {
                XCTAssertNil(facesOf[id], "redirect \(id) still has faces", file: file, line: line)
            }
        }
        var photoPersons: [Int64: Set<Int64>] = [:]
        for row in try await sql.raw("SELECT photo_id, person_id FROM photo_persons").all() {
            photoPersons[try row.decode(column: "photo_id", as: Int64.self), default: []].insert(try row.decode(column: "person_id", as: Int64.self))
        }
        XCTAssertEqual(photoPersons, personsOfPhoto.mapValues(Set.init), "photo_persons", file: file, line: line)
        for photo in try await photos() where photo.status == .processed {
            XCTAssertEqual(photo.personIDs, personsOfPhoto[photo.photoID] ?? [], "person_ids of photo \(photo.photoID)", file: file, line: line)
        }
        let index = services.identity.state.withLockedValue { $0.index }
        XCTAssertEqual(index.personCount, facesOf.count, "persons in the index", file: file, line: line)
        for (person, count) in facesOf {
            XCTAssertEqual(index.faceCount(of: person), count, "faces of \(person) in the index", file: file, line: line)
        }
        var facesOfLook: [Int64: Int] = [:], ownerOfLook: [Int64: Int64] = [:]
        for row in try await sql.raw("SELECT COALESCE(look_id, person_id) AS look, person_id FROM embeddings WHERE person_id IS NOT NULL").all() {
            let look = try row.decode(column: "look", as: Int64.self)
            facesOfLook[look, default: 0] += 1
            ownerOfLook[look] = try row.decode(column: "person_id", as: Int64.self)
        }
        XCTAssertEqual(index.lookIDs, facesOfLook.keys.sorted(), "looks in the index", file: file, line: line)
        for (look, count) in facesOfLook {
            XCTAssertEqual(index.faceCount(ofLook: look), count, "faces of look \(look) in the index", file: file, line: line)
            XCTAssertEqual(index.owner(ofLook: look), ownerOfLook[look], "owner of look \(look)", file: file, line: line)
        }
    }
}
