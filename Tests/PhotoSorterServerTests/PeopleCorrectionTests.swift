import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// People corrections (rename, split, "not this person", merge) and re-clustering, proven through the HTTP API on
/// real (recorded dlib) embeddings: corrections survive a re-cluster, a re-ingest and a reprocess, bad ones change
/// nothing, none is lost to a concurrent callback, and writes need the shared secret.
class PeopleCorrectionTests: DatabaseTestCase {
    /// Rename, split (move to a new person), "not this person" and merge are kept through a re-cluster and a
    /// re-ingest of the folder; the absorbed id redirects; a second re-cluster changes nothing.
    func testCorrectionsSurviveReclusterAndReingest() async throws {
        try await TestService.run(flavor) { service in
            let folder = URL.faces("face_recognition_examples")
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            // Everyone, one-photo persons too: the merge below needs two more persons who never share a photo.
            let people = try await service.request(.GET, "/persons?limit=100&min_photos=1").decode(PersonPage.self).persons
            XCTAssertGreaterThanOrEqual(people.count, 6)
            let (a, b) = (people[0].personID, people[1].personID)
            let (c, d) = try await service.twoPersonsNeverTogether(people.dropFirst(2).map(\.personID))

            let renamed = try await service.request(.PATCH, "/person/\(a)", json: PersonUpdate(displayName: .some("Ann Example")))
            XCTAssertEqual(renamed.status, .ok, renamed.reason)
            let facesOfA = try await service.faces(of: a)
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [facesOfA[1].faceID], toPersonID: nil))
                .decode(MoveResult.self)
            XCTAssertTrue(split.createdPerson)
            let rejectedFace = try await service.faces(of: b)[1]
            let rejected = try await service.request(.POST, "/faces/\(rejectedFace.faceID)/reject").decode(RejectResult.self)
            XCTAssertEqual(rejected.rejectedPersonID, b)
            XCTAssertNotEqual(rejected.personID, b)
            let merged = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [c, d], into: c)).decode(MergeResult.self)
            XCTAssertEqual(merged.merged, [d])
            XCTAssertEqual(merged.person.personID, c)
            XCTAssertEqual(service.services.identity.state.withLockedValue { $0.index.looks(of: c) }, [c, d].sorted(),
                           "the merge keeps d's faces as a look of c")
            try await service.assertConsistent()

            let confirmed = try await service.confirmedFaces()
            XCTAssertEqual(confirmed[facesOfA[1].faceID], split.personID)
            let reclustered = try await service.recluster()
            XCTAssertEqual(reclustered.confirmedFaces, confirmed.count)
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            _ = try await service.recluster()

            for (face, person) in confirmed {
                let now = try await service.request(.GET, "/faces/\(face)").decode(FaceView.self)
                XCTAssertEqual(now.personID, person, "confirmed face \(face) moved")
                XCTAssertTrue(now.confirmed)
            }
            let rejectedNow = try await service.request(.GET, "/faces/\(rejectedFace.faceID)").decode(FaceView.self)
            XCTAssertNotEqual(rejectedNow.personID, b, "a face marked 'not this person' went back")
            let ann = try await service.request(.GET, "/person/\(a)").decode(PersonView.self)
            XCTAssertEqual(ann.displayName, "Ann Example")
            XCTAssertEqual(ann.personID, a)
            let redirect = try await service.request(.GET, "/person/\(d)").decode(PersonView.self)
            XCTAssertEqual(redirect.personID, c)
            XCTAssertEqual(redirect.mergedInto, c)
            XCTAssertEqual(redirect.redirectedFrom, d)

            let again = try await service.recluster()
            XCTAssertEqual(again.facesMoved, 0)
            XCTAssertEqual(again.personsCreated, 0)
            XCTAssertEqual(again.personsMerged, 0)
            try await service.assertConsistent()
        }
    }

    /// Every bad correction is a 4xx with a reason and changes nothing.
    func testBadCorrectionsAreRefusedAndChangeNothing() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let (a, b, hidden) = (people[0].personID, people[1].personID, people[2].personID)
            _ = try await service.request(.PATCH, "/person/\(hidden)", json: PersonUpdate(hidden: true))
            let rejectedFace = try await service.faces(of: b)[0]
            let rejection = try await service.request(.POST, "/faces/\(rejectedFace.faceID)/reject").decode(RejectResult.self)
            let photos = try await service.photos()
            let group = try XCTUnwrap(photos.first { $0.personIDs.count >= 2 })
            let groupPhoto = try await service.photo(group.photoID)
            let groupFaces = try XCTUnwrap(groupPhoto.detections)
            let faceOfA = try await service.faces(of: a)[0]
            let otherPersonInGroup = groupFaces[1].personID!
            let before = try await service.correctionRows()

            struct Refusal {
                let what: String, method: HTTPMethod, path: String, body: Data?, status: HTTPResponseStatus
            }
            func json(_ value: some Encodable) throws -> Data { try JSONEncoder().encode(value) }
            var refused: [Refusal] = []
            refused.append(Refusal(what: "merge into itself", method: .POST, path: "/persons/merge",
                                   body: try json(MergeRequest(personIDs: [a, a])), status: .unprocessableEntity))
            refused.append(Refusal(what: "merge a person into itself by into", method: .POST, path: "/persons/merge",
                                   body: try json(MergeRequest(personIDs: [a], into: a)), status: .unprocessableEntity))
            refused.append(Refusal(what: "merge a missing person", method: .POST, path: "/persons/merge",
                                   body: try json(MergeRequest(personIDs: [a, 999_999])), status: .notFound))
            refused.append(Refusal(what: "merge a hidden person", method: .POST, path: "/persons/merge",
                                   body: try json(MergeRequest(personIDs: [a, hidden])), status: .conflict))
            refused.append(Refusal(what: "merge two persons of one photo", method: .POST, path: "/persons/merge",
                                   body: try json(MergeRequest(personIDs: [groupFaces[0].personID!, otherPersonInGroup])), status: .conflict))
            refused.append(Refusal(what: "move a missing face", method: .POST, path: "/faces/move",
                                   body: try json(MoveRequest(faceIDs: [faceOfA.faceID, 999_999], toPersonID: b)), status: .notFound))
            refused.append(Refusal(what: "move two faces of one photo", method: .POST, path: "/faces/move",
                                   body: try json(MoveRequest(faceIDs: [groupFaces[0].embeddingID, groupFaces[1].embeddingID], toPersonID: a)),
                                   status: .conflict))
            refused.append(Refusal(what: "move a face to a person already in its photo", method: .POST, path: "/faces/move",
                                   body: try json(MoveRequest(faceIDs: [groupFaces[0].embeddingID], toPersonID: otherPersonInGroup)), status: .conflict))
            refused.append(Refusal(what: "move a face back to a person it is not", method: .POST, path: "/faces/move",
                                   body: try json(MoveRequest(faceIDs: [rejectedFace.faceID], toPersonID: rejection.rejectedPersonID)), status: .conflict))
            refused.append(Refusal(what: "move to a hidden person", method: .POST, path: "/faces/move",
                                   body: try json(MoveRequest(faceIDs: [faceOfA.faceID], toPersonID: hidden)), status: .conflict))
            refused.append(Refusal(what: "move no faces", method: .POST, path: "/faces/move",
                                   body: try json(MoveRequest(faceIDs: [], toPersonID: a)), status: .unprocessableEntity))
            refused.append(Refusal(what: "reject a missing face", method: .POST, path: "/faces/999999/reject", body: nil, status: .notFound))
            refused.append(Refusal(what: "reject a face as a missing person", method: .POST, path: "/faces/\(faceOfA.faceID)/reject",
                                   body: try json(RejectRequest(personID: 999_999)), status: .notFound))
            refused.append(Refusal(what: "reject a face as a malformed person", method: .POST, path: "/faces/\(faceOfA.faceID)/reject",
                                   body: Data(#"{"person_id": "b"}"#.utf8), status: .badRequest))
            refused.append(Refusal(what: "rename to blank", method: .PATCH, path: "/person/\(a)",
                                   body: Data(#"{"display_name": "  "}"#.utf8), status: .unprocessableEntity))
            refused.append(Refusal(what: "rename a missing person", method: .PATCH, path: "/person/999999",
                                   body: Data(#"{"display_name": "X"}"#.utf8), status: .notFound))
            refused.append(Refusal(what: "malformed body", method: .POST, path: "/persons/merge", body: Data("{".utf8), status: .badRequest))
            for refusal in refused {
                let reply = try await service.request(refusal.method, refusal.path, body: refusal.body)
                XCTAssertEqual(reply.status, refusal.status, "\(refusal.what): \(reply.reason)")
                XCTAssertFalse(reply.reason.isEmpty, "\(refusal.what) gives no reason")
                let after = try await service.correctionRows()
                XCTAssertEqual(after, before, "\(refusal.what) changed something")
            }
            try await service.assertConsistent()
        }
    }

    /// Corrections racing ML callbacks: every correction and every photo is kept, and all derived data agrees.
    func testConcurrentCorrectionsAndCallbacksLoseNothing() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let job = try await service.ingest(URL.faces("lfw_small"), batchSize: 20)
            var moved: [Int64: Int64] = [:]
            try await withThrowingTaskGroup(of: (Int64, Int64)?.self) { group in
                for person in people.prefix(4) {
                    let faces = try await service.faces(of: person.personID)
                    group.addTask {
                        let result = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [faces[0].faceID], toPersonID: nil))
                        XCTAssertEqual(result.status, .ok, result.reason)
                        return (faces[0].faceID, try result.decode(MoveResult.self).personID)
                    }
                    group.addTask {
                        let reply = try await service.request(.PATCH, "/person/\(person.personID)", json: PersonUpdate(displayName: .some("P\(person.personID)")))
                        XCTAssertEqual(reply.status, .ok, reply.reason)
                        return nil
                    }
                }
                for try await pair in group { if let (face, person) = pair { moved[face] = person } }
            }
            let status = try await service.waitUntilDone(job, timeout: 180)
            XCTAssertEqual(status.processed, status.scanned)
            for (face, person) in moved {
                let now = try await service.request(.GET, "/faces/\(face)").decode(FaceView.self)
                XCTAssertEqual(now.personID, person)
            }
            for person in people.prefix(4) {
                let view = try await service.request(.GET, "/person/\(person.personID)").decode(PersonView.self)
                XCTAssertEqual(view.displayName, "P\(person.personID)")
            }
            try await service.assertConsistent()
        }
    }

    /// A person a correction left without faces keeps its row, so its id is never handed to somebody else
    /// (SQLite reuses the highest deleted rowid).
    func testEmptiedPersonIDsAreNeverReused() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let faces = try await service.faces(of: people[0].personID)
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [faces[0].faceID], toPersonID: nil))
                .decode(MoveResult.self)
            let rejected = try await service.request(.POST, "/faces/\(faces[0].faceID)/reject").decode(RejectResult.self)
            XCTAssertEqual(rejected.rejectedPersonID, split.personID)
            let emptied = try await service.request(.GET, "/person/\(split.personID)").decode(PersonView.self)
            XCTAssertEqual(emptied.faceCount, 0)
            let next = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [faces[1].faceID], toPersonID: nil))
                .decode(MoveResult.self)
            XCTAssertGreaterThan(next.personID, split.personID)
            try await service.assertConsistent()
        }
    }

    /// A reprocess replaces every face, yet each correction stays: the new face that replaces a confirmed one is
    /// confirmed in the same person, "not this person" marks follow the face, redirects and names stay.
    func testCorrectionsSurviveAReprocess() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let (a, b) = (people[0].personID, people[1].personID)
            let (c, d) = try await service.twoPersonsNeverTogether(people.dropFirst(2).map(\.personID))
            _ = try await service.request(.PATCH, "/person/\(a)", json: PersonUpdate(displayName: .some("Ann")))
            let splitFace = try await service.faces(of: a)[1]
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [splitFace.faceID], toPersonID: nil))
                .decode(MoveResult.self)
            let rejectedFace = try await service.faces(of: b)[1]
            _ = try await service.request(.POST, "/faces/\(rejectedFace.faceID)/reject").decode(RejectResult.self)
            _ = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [c, d], into: c)).decode(MergeResult.self)
            let mergedFaces = try await service.faces(of: c).count

            let status = try await service.reprocess(body: "{}")
            XCTAssertEqual(status.status, "COMPLETED")
            func face(at bbox: BoundingBox, in photo: Int64) async throws -> FaceView {
                let detections = try await service.photo(photo).detections ?? []
                let id = try XCTUnwrap(detections.first { $0.bbox == bbox }?.embeddingID)
                return try await service.request(.GET, "/faces/\(id)").decode(FaceView.self)
            }
            let splitNow = try await face(at: splitFace.bbox, in: splitFace.photoID)
            XCTAssertEqual(splitNow.personID, split.personID)
            XCTAssertTrue(splitNow.confirmed)
            let rejectedNow = try await face(at: rejectedFace.bbox, in: rejectedFace.photoID)
            XCTAssertNotEqual(rejectedNow.personID, b)
            let facesOfC = try await service.faces(of: c)
            XCTAssertEqual(facesOfC.count, mergedFaces)
            XCTAssertTrue(facesOfC.allSatisfy(\.confirmed))
            let redirect = try await service.request(.GET, "/person/\(d)").decode(PersonView.self)
            XCTAssertEqual(redirect.personID, c)
            let ann = try await service.request(.GET, "/person/\(a)").decode(PersonView.self)
            XCTAssertEqual(ann.displayName, "Ann")
            try await service.assertConsistent()
        }
    }

    /// The library is "current" after a re-cluster until a face is stored, moved or confirmed: what lets `sort`
    /// skip a closing re-cluster that would change nothing.
    func testReclusterIsCurrentUntilTheLibraryChanges() async throws {
        try await TestService.run(flavor) { service in
            let recluster = service.services.recluster
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            var current = try await recluster.isCurrent()
            XCTAssertFalse(current, "never re-clustered")
            _ = try await recluster.run()
            current = try await recluster.isCurrent()
            XCTAssertTrue(current)

            let photos = try await service.photos()
            let person = try XCTUnwrap(photos.first?.personIDs.first)
            let face = try await service.faces(of: person)[0]
            let move = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [face.faceID], toPersonID: nil))
            XCTAssertEqual(move.status, .ok, move.reason)
            current = try await recluster.isCurrent()
            XCTAssertFalse(current, "a correction since")
            _ = try await recluster.run()
            current = try await recluster.isCurrent()
            XCTAssertTrue(current)

            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            current = try await recluster.isCurrent()
            XCTAssertFalse(current, "new faces since")
        }
    }

    /// A merge redirects the runner-ups of the absorbed persons, and an emptied person drops its own, through an
    /// index: before it, each such statement read every face with its vector (90 scans of the table in a re-cluster
    /// of a million faces). SQLite plans without statistics, so the plan is the same on a small library.
    func testRunnerUpsAreFoundThroughAnIndexNotByReadingEveryFace() async throws {
        guard flavor == .sqlite else { return }   // PostgreSQL's planner scans a table this small whatever its indexes
        try await TestService.run(flavor) { service in
            let sql = service.app.db as! any SQLDatabase
            for statement in [
                "UPDATE embeddings SET runner_up_person_id = 9 WHERE runner_up_person_id IN (1, 2)",
                "UPDATE embeddings SET runner_up_person_id = NULL, runner_up_similarity = NULL WHERE runner_up_person_id = 3",
            ] {
                let plan = try await sql.raw("EXPLAIN QUERY PLAN \(unsafeRaw: statement)").all()
                    .map { try $0.decode(column: "detail", as: String.self) }
                XCTAssertTrue(plan.contains { $0.contains("USING INDEX embeddings_runner_up") }, "\(statement): \(plan)")
            }
        }
    }

    /// With a shared secret configured, every write (corrections, re-cluster, reprocess) needs it; reads do not.
    func testWritesNeedTheSharedSecret() async throws {
        try await TestService.run(flavor, tune: { $0.sharedSecret = "s3cret" }) { service in
            let writes: [(HTTPMethod, String, String)] = [
                (.PATCH, "/person/1", #"{"hidden": true}"#), (.POST, "/persons/merge", #"{"person_ids": [1, 2]}"#),
                (.POST, "/faces/move", #"{"face_ids": [1]}"#), (.POST, "/faces/1/reject", "{}"), (.POST, "/faces/1/confirm", "{}"),
                (.POST, "/recluster", "{}"), (.POST, "/reprocess", "{}"),
            ]
            for (method, path, body) in writes {
                let reply = try await service.request(method, path, body: Data(body.utf8))
                XCTAssertEqual(reply.status, .unauthorized, "\(method) \(path): \(reply.reason)")
            }
            let recluster = try await service.request(.POST, "/recluster", body: Data("{}".utf8), headers: [("X-Photo-Sorter-Secret", "s3cret")])
            XCTAssertEqual(recluster.status, .accepted, recluster.reason)
            let list = try await service.request(.GET, "/persons")
            XCTAssertEqual(list.status, .ok)
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class PeopleCorrectionTestsOnPostgres: PeopleCorrectionTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testCorrectionsSurviveReclusterAndReingest() async throws { try await super.testCorrectionsSurviveReclusterAndReingest() }
}
