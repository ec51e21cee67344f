import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// People corrections and re-clustering, proven through the HTTP API on real (recorded dlib) embeddings.
enum PeopleScenarios {
    // MARK: Scenarios

    /// Rename, split (move to a new person), "not this person" and merge are kept through a re-cluster and a
    /// re-ingest of the folder; the absorbed id redirects; a second re-cluster changes nothing.
    static func correctionsSurviveReclusterAndReingest(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            let folder = URL.faces("face_recognition_examples")
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            // Everyone, one-photo persons too: the merge below needs two more persons who never share a photo.
            let people = try await service.request(.GET, "/persons?limit=100&min_photos=1").decode(PersonPage.self).persons
            XCTAssertGreaterThanOrEqual(people.count, 6)
            let (a, b) = (people[0].personID, people[1].personID)
            let (c, d) = try await twoPersonsNeverTogether(people.dropFirst(2).map(\.personID), service)

            let renamed = try await service.request(.PATCH, "/person/\(a)", json: PersonUpdate(displayName: .some("Ann Example")))
            XCTAssertEqual(renamed.status, .ok, renamed.reason)
            let facesOfA = try await faces(of: a, service)
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [facesOfA[1].faceID], toPersonID: nil))
                .decode(MoveResult.self)
            XCTAssertTrue(split.createdPerson)
            let rejectedFace = try await faces(of: b, service)[1]
            let rejected = try await service.request(.POST, "/faces/\(rejectedFace.faceID)/reject").decode(RejectResult.self)
            XCTAssertEqual(rejected.rejectedPersonID, b)
            XCTAssertNotEqual(rejected.personID, b)
            let merged = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [c, d], into: c)).decode(MergeResult.self)
            XCTAssertEqual(merged.merged, [d])
            XCTAssertEqual(merged.person.personID, c)
            try await assertConsistent(service)

            let confirmed = try await confirmedFaces(service)
            XCTAssertEqual(confirmed[facesOfA[1].faceID], split.personID)
            let reclustered = try await recluster(service)
            XCTAssertEqual(reclustered.confirmedFaces, confirmed.count)
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            _ = try await recluster(service)

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

            let again = try await recluster(service)
            XCTAssertEqual(again.facesMoved, 0)
            XCTAssertEqual(again.personsCreated, 0)
            XCTAssertEqual(again.personsMerged, 0)
            try await assertConsistent(service)
        }
    }

    /// Every bad correction is a 4xx with a reason and changes nothing.
    static func badCorrectionsAreRefusedAndChangeNothing(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let (a, b, hidden) = (people[0].personID, people[1].personID, people[2].personID)
            _ = try await service.request(.PATCH, "/person/\(hidden)", json: PersonUpdate(hidden: true))
            let rejectedFace = try await faces(of: b, service)[0]
            let rejection = try await service.request(.POST, "/faces/\(rejectedFace.faceID)/reject").decode(RejectResult.self)
            let photos = try await service.photos()
            let group = try XCTUnwrap(photos.first { $0.personIDs.count >= 2 })
            let groupPhoto = try await service.photo(group.photoID)
            let groupFaces = try XCTUnwrap(groupPhoto.detections)
            let faceOfA = try await faces(of: a, service)[0]
            let otherPersonInGroup = groupFaces[1].personID
            let before = try await snapshot(service)

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
                                   body: try json(MergeRequest(personIDs: [groupFaces[0].personID, otherPersonInGroup])), status: .conflict))
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
                let after = try await snapshot(service)
                XCTAssertEqual(after, before, "\(refusal.what) changed something")
            }
            try await assertConsistent(service)
        }
    }

    /// Corrections racing ML callbacks: every correction and every photo is kept, and all derived data agrees.
    static func concurrentCorrectionsAndCallbacksLoseNothing(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let job = try await service.ingest(URL.faces("lfw_small"), batchSize: 20)
            var moved: [Int64: Int64] = [:]
            try await withThrowingTaskGroup(of: (Int64, Int64)?.self) { group in
                for person in people.prefix(4) {
                    let faces = try await faces(of: person.personID, service)
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
            try await assertConsistent(service)
        }
    }

    /// Listing pages by photo count with filters; the review queue puts the least certain faces first and a
    /// confirmed face leaves it; the person dump carries names and hidden flags.
    static func listingReviewAndDumpReflectCorrections(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("lfw_small")))
            let all = try await service.request(.GET, "/persons?limit=1000").decode(PersonPage.self)
            XCTAssertEqual(all.total, all.persons.count)
            XCTAssertEqual(all.persons.map(\.photoCount), all.persons.map(\.photoCount).sorted(by: >))
            let firstPage = try await service.request(.GET, "/persons?limit=10").decode(PersonPage.self)
            XCTAssertEqual(firstPage.nextOffset, 10)
            let second = try await service.request(.GET, "/persons?limit=10&offset=10").decode(PersonPage.self)
            XCTAssertEqual(second.persons.map(\.personID), Array(all.persons.dropFirst(10).prefix(10)).map(\.personID))

            let top = all.persons[0].personID
            _ = try await service.request(.PATCH, "/person/\(top)", json: PersonUpdate(displayName: .some("Top Person")))
            _ = try await service.request(.PATCH, "/person/\(all.persons[1].personID)", json: PersonUpdate(hidden: true))
            let named = try await service.request(.GET, "/persons?name=top").decode(PersonPage.self)
            XCTAssertEqual(named.persons.map(\.personID), [top])
            let unnamed = try await service.request(.GET, "/persons?unnamed=true&limit=1000").decode(PersonPage.self)
            XCTAssertEqual(unnamed.total, all.total - 2, "the named and the hidden person are not listed")
            let hidden = try await service.request(.GET, "/persons?hidden=true").decode(PersonPage.self)
            XCTAssertEqual(hidden.persons.map(\.personID), [all.persons[1].personID])

            let review = try await service.request(.GET, "/review?limit=50").decode(ReviewPage.self).faces
            XCTAssertFalse(review.isEmpty)
            XCTAssertEqual(review.map(\.gap), review.map(\.gap).sorted())
            XCTAssertTrue(review.allSatisfy { $0.face.runnerUpPersonID != nil && $0.face.runnerUpPersonID != $0.face.personID })
            let first = review[0].face
            let confirmed = try await service.request(.POST, "/faces/\(first.faceID)/confirm").decode(FaceView.self)
            XCTAssertTrue(confirmed.confirmed)
            let reviewAfter = try await service.request(.GET, "/review?limit=50").decode(ReviewPage.self).faces
            XCTAssertFalse(reviewAfter.contains { $0.face.faceID == first.faceID })

            let dump = try await service.request(.GET, "/person-dump?limit=10000").decode(PersonDump.self)
            XCTAssertEqual(dump.persons.first { $0.personID == top }?.displayName, "Top Person")
            XCTAssertEqual(dump.persons.first { $0.personID == all.persons[1].personID }?.hidden, true)
        }
    }

    /// The people list leaves out persons seen in only one photo unless they are named, says how many it left out,
    /// and lists everyone with `min_photos=1`; the other filters work the same under either; a bad `min_photos`
    /// is a 400 with a reason.
    static func peopleListLeavesOutOnePhotoPersonsUntilAskedForAll(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            for set in ["face_recognition_examples", "dlib_faces"] {
                _ = try await service.waitUntilDone(try await service.ingest(URL.faces(set)))
            }
            func list(_ query: String) async throws -> PersonPage {
                let reply = try await service.request(.GET, "/persons?limit=1000\(query)")
                XCTAssertEqual(reply.status, .ok, "\(query): \(reply.reason)")
                return try reply.decode(PersonPage.self)
            }
            let all = try await list("&min_photos=1")
            let everyone = try await service.services.database.sql.raw("""
                SELECT COUNT(*) AS n FROM persons WHERE merged_into IS NULL AND face_count > 0 AND hidden = \(false)
                """).first()!.decode(column: "n", as: Int.self)
            XCTAssertEqual(all.total, everyone, "min_photos=1 lists every visible person")
            XCTAssertEqual(all.persons.count, all.total)
            XCTAssertEqual(all.belowMinPhotos, 0)
            let onePhoto = all.persons.filter { $0.photoCount == 1 }
            XCTAssertGreaterThanOrEqual(onePhoto.count, 3, "the group photos' strangers are one-photo persons")
            XCTAssertTrue(all.persons.contains { $0.photoCount >= 2 })

            let standard = try await list("")
            XCTAssertEqual(standard.persons.map(\.personID), all.persons.filter { $0.photoCount >= 2 }.map(\.personID),
                           "by default: the persons with 2 or more photos, in the same order")
            XCTAssertEqual(standard.total, all.total - onePhoto.count)
            XCTAssertEqual(standard.belowMinPhotos, onePhoto.count)
            let firstTwo = try await service.request(.GET, "/persons?limit=2").decode(PersonPage.self)
            XCTAssertEqual(firstTwo.total, standard.total, "total counts the same on every page")
            XCTAssertEqual(firstTwo.nextOffset, standard.total > 2 ? 2 : nil)
            let three = try await list("&min_photos=3")
            XCTAssertEqual(three.persons.map(\.personID), all.persons.filter { $0.photoCount >= 3 }.map(\.personID))
            XCTAssertEqual(three.belowMinPhotos, all.persons.filter { $0.photoCount < 3 }.count)

            // A named person is listed whatever its photo count, and a name search finds it.
            let named = onePhoto[0].personID
            _ = try await service.request(.PATCH, "/person/\(named)", json: PersonUpdate(displayName: .some("Lin Example")))
            let afterNaming = try await list("")
            XCTAssertTrue(afterNaming.persons.contains { $0.personID == named }, "a named one-photo person is listed by default")
            XCTAssertEqual(afterNaming.total, standard.total + 1)
            XCTAssertEqual(afterNaming.belowMinPhotos, onePhoto.count - 1)
            let byName = try await list("&name=lin%20ex")
            XCTAssertEqual(byName.persons.map(\.personID), [named])

            // `unnamed` and `hidden` keep the same minimum; min_photos=1 lifts it for them too.
            let unnamedOnePhoto = onePhoto.dropFirst().map(\.personID)
            let unnamed = try await list("&unnamed=true")
            XCTAssertTrue(unnamed.persons.allSatisfy { $0.photoCount >= 2 && $0.displayName == nil })
            XCTAssertEqual(unnamed.belowMinPhotos, unnamedOnePhoto.count)
            let unnamedAll = try await list("&unnamed=true&min_photos=1")
            XCTAssertEqual(Set(unnamedAll.persons.map(\.personID)).intersection(onePhoto.map(\.personID)), Set(unnamedOnePhoto))
            let stranger = unnamedOnePhoto[0]
            _ = try await service.request(.PATCH, "/person/\(stranger)", json: PersonUpdate(hidden: true))
            let hidden = try await list("&hidden=true")
            XCTAssertEqual(hidden.persons.map(\.personID), [], "a hidden one-photo stranger is left out of hidden=true too")
            XCTAssertEqual(hidden.belowMinPhotos, 1)
            let hiddenAll = try await list("&hidden=true&min_photos=1")
            XCTAssertEqual(hiddenAll.persons.map(\.personID), [stranger])

            for bad in ["0", "-1", "abc", "1.5", "2&min_photos=3", ""] {
                let reply = try await service.request(.GET, "/persons?min_photos=\(bad)")
                XCTAssertEqual(reply.status, .badRequest, "min_photos=\(bad): \(reply.reason)")
                XCTAssertTrue(reply.reason.contains("min_photos"), "min_photos=\(bad) gives no clear reason: \(reply.reason)")
            }
        }
    }

    /// Each review item carries its question, and both answers to each kind change the library and take the item
    /// out of the queue: for a face that is its person's only face the question is about its runner-up (yes moves
    /// the face there, no records that it is not the runner-up, which is then never suggested again); otherwise
    /// it is about the face's own person (yes confirms, no takes the face out). Items no answer could change are
    /// not listed.
    static func reviewAsksTheQuestionEachAnswerSettles(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("lfw_small")))
            func queue() async throws -> [ReviewItem] {
                try await service.request(.GET, "/review?limit=500").decode(ReviewPage.self).faces
            }
            func person(_ id: Int64) async throws -> PersonView { try await service.request(.GET, "/person/\(id)").decode(PersonView.self) }
            func asked(_ items: [ReviewItem], _ item: ReviewItem) -> Bool {
                items.contains { $0.face.faceID == item.face.faceID && $0.question == item.question }
            }
            let items = try await queue()
            XCTAssertEqual(items.map(\.gap), items.map(\.gap).sorted(), "least certain first")
            for item in items {
                let own = try await person(item.face.personID)
                let runnerUp = try XCTUnwrap(item.face.runnerUpPersonID, "face \(item.face.faceID) has no runner-up")
                switch item.question.kind {
                case .samePerson:
                    XCTAssertGreaterThan(own.faceCount, 1, "face \(item.face.faceID)")
                    XCTAssertEqual(item.question.personID, item.face.personID)
                case .runnerUp:
                    XCTAssertEqual(own.faceCount, 1, "face \(item.face.faceID)")
                    XCTAssertEqual(item.question.personID, runnerUp)
                    let other = try await person(runnerUp)
                    XCTAssertTrue(other.personID == runnerUp && !other.hidden && other.faceCount > 0, "runner-up \(runnerUp) cannot take the face")
                }
            }
            let runnerUps = items.filter { $0.question.kind == .runnerUp }
            let sames = items.filter { $0.question.kind == .samePerson }
            XCTAssertGreaterThanOrEqual(runnerUps.count, 2, "lfw_small has one-face persons near another person")
            XCTAssertGreaterThanOrEqual(sames.count, 2)

            // Runner-up, yes: the face moves to the runner-up (confirmed); its emptied person redirects there.
            let moved = runnerUps[0]
            let target = moved.question.personID
            let facesBefore = try await person(target).faceCount
            let move = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [moved.face.faceID], toPersonID: target))
            XCTAssertEqual(move.status, .ok, move.reason)
            let movedNow = try await service.request(.GET, "/faces/\(moved.face.faceID)").decode(FaceView.self)
            XCTAssertEqual(movedNow.personID, target)
            XCTAssertTrue(movedNow.confirmed)
            let targetNow = try await person(target), emptied = try await person(moved.face.personID)
            XCTAssertEqual(targetNow.faceCount, facesBefore + 1)
            XCTAssertEqual(emptied.personID, target, "the one-face person became a redirect")
            let afterYes = try await queue()
            XCTAssertFalse(afterYes.contains { $0.face.faceID == moved.face.faceID })

            // Runner-up, no: recorded as "not that person"; the face stays, and is never offered that person again.
            let declined = try XCTUnwrap(afterYes.first { $0.question.kind == .runnerUp })
            let notHim = declined.question.personID
            let rejected = try await service.request(.POST, "/faces/\(declined.face.faceID)/reject", json: RejectRequest(personID: notHim))
                .decode(RejectResult.self)
            XCTAssertEqual(rejected, RejectResult(faceID: declined.face.faceID, rejectedPersonID: notHim, personID: declined.face.personID,
                                                  createdPerson: false))
            let declinedNow = try await service.request(.GET, "/faces/\(declined.face.faceID)").decode(FaceView.self)
            XCTAssertEqual(declinedNow.personID, declined.face.personID, "the face stays in its person")
            XCTAssertFalse(declinedNow.confirmed)
            XCTAssertNil(declinedNow.runnerUpPersonID, "the declined runner-up is no longer its runner-up")
            let afterNo = try await queue()
            XCTAssertFalse(afterNo.contains { $0.face.faceID == declined.face.faceID })
            let moveBack = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [declined.face.faceID], toPersonID: notHim))
            XCTAssertEqual(moveBack.status, .conflict, "the rejection is a cannot-link: \(moveBack.reason)")
            XCTAssertTrue(moveBack.reason.contains("marked as not person \(notHim)"), moveBack.reason)
            let again = try await service.request(.POST, "/faces/\(declined.face.faceID)/reject", json: RejectRequest(personID: notHim))
            XCTAssertEqual(again.status, .ok, "saying no twice is no error: \(again.reason)")
            _ = try await recluster(service)
            let afterRecluster = try await service.request(.GET, "/faces/\(declined.face.faceID)").decode(FaceView.self)
            XCTAssertNotEqual(afterRecluster.personID, notHim)
            XCTAssertNotEqual(afterRecluster.runnerUpPersonID, notHim, "a re-cluster suggests the declined person again")
            let current = try await queue()
            XCTAssertFalse(current.contains { $0.face.faceID == declined.face.faceID && $0.question.personID == notHim })

            // Same person, yes: confirmed, out of the queue.
            let kept = try XCTUnwrap(current.first { $0.question.kind == .samePerson })
            let confirmed = try await service.request(.POST, "/faces/\(kept.face.faceID)/confirm").decode(FaceView.self)
            XCTAssertTrue(confirmed.confirmed)
            XCTAssertEqual(confirmed.personID, kept.face.personID)
            let afterConfirm = try await queue()
            XCTAssertFalse(afterConfirm.contains { $0.face.faceID == kept.face.faceID })

            // Same person, no: the face leaves its person for good; the question is not asked again.
            let out = try XCTUnwrap(afterConfirm.first { $0.question.kind == .samePerson })
            let taken = try await service.request(.POST, "/faces/\(out.face.faceID)/reject").decode(RejectResult.self)
            XCTAssertEqual(taken.rejectedPersonID, out.face.personID)
            XCTAssertNotEqual(taken.personID, out.face.personID)
            let afterTakingOut = try await queue()
            XCTAssertFalse(asked(afterTakingOut, out))

            // A runner-up that cannot take the face (hidden) is not asked about; unhidden, it is again.
            let pending = try XCTUnwrap(afterTakingOut.first { $0.question.kind == .runnerUp })
            _ = try await service.request(.PATCH, "/person/\(pending.question.personID)", json: PersonUpdate(hidden: true))
            let whileHidden = try await queue()
            XCTAssertFalse(asked(whileHidden, pending))
            _ = try await service.request(.PATCH, "/person/\(pending.question.personID)", json: PersonUpdate(hidden: false))
            let unhidden = try await queue()
            XCTAssertTrue(asked(unhidden, pending))
            try await assertConsistent(service)
        }
    }

    /// A reprocess replaces every face, yet each correction stays: the new face that replaces a confirmed one is
    /// confirmed in the same person, "not this person" marks follow the face, redirects and names stay.
    static func correctionsSurviveAReprocess(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let (a, b) = (people[0].personID, people[1].personID)
            let (c, d) = try await twoPersonsNeverTogether(people.dropFirst(2).map(\.personID), service)
            _ = try await service.request(.PATCH, "/person/\(a)", json: PersonUpdate(displayName: .some("Ann")))
            let splitFace = try await faces(of: a, service)[1]
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [splitFace.faceID], toPersonID: nil))
                .decode(MoveResult.self)
            let rejectedFace = try await faces(of: b, service)[1]
            _ = try await service.request(.POST, "/faces/\(rejectedFace.faceID)/reject").decode(RejectResult.self)
            _ = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [c, d], into: c)).decode(MergeResult.self)
            let mergedFaces = try await faces(of: c, service).count

            let status = try await ModelScenarios.reprocess(service, body: "{}")
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
            let facesOfC = try await faces(of: c, service)
            XCTAssertEqual(facesOfC.count, mergedFaces)
            XCTAssertTrue(facesOfC.allSatisfy(\.confirmed))
            let redirect = try await service.request(.GET, "/person/\(d)").decode(PersonView.self)
            XCTAssertEqual(redirect.personID, c)
            let ann = try await service.request(.GET, "/person/\(a)").decode(PersonView.self)
            XCTAssertEqual(ann.displayName, "Ann")
            try await assertConsistent(service)
        }
    }

    /// With a shared secret configured, every write (corrections, re-cluster, reprocess) needs it; reads do not.
    static func writesNeedTheSharedSecret(_ flavor: DatabaseFlavor) async throws {
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

    /// Two instances on one PostgreSQL database: after a merge on one, the other's index reflects it at its next
    /// identity write (the generation changed), so it never matches a face to the absorbed person.
    static func otherInstancesCatchUpWithCorrections() async throws {
        try await TestService.run(.postgres) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            try await withOtherInstance(of: service) { other in
                let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
                let (c, d) = try await twoPersonsNeverTogether(people.map(\.personID), service)
                let facesOfD = try await faces(of: d, service)
                let (before, generationBefore) = other.photoSorter.identity.state.withLockedValue { ($0.index, $0.generation) }
                XCTAssertEqual(before.faceCount(of: d), facesOfD.count)

                _ = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [c, d], into: c)).decode(MergeResult.self)
                let anyFace = try await faces(of: c, service)[0]
                _ = try await other.photoSorter.people.confirm(face: anyFace.faceID)
                let after = other.photoSorter.identity.state.withLockedValue { $0.index }
                XCTAssertEqual(after.faceCount(of: d), 0, "the other instance still matches faces to the absorbed person")
                let facesOfC = try await faces(of: c, service)
                XCTAssertEqual(after.faceCount(of: c), facesOfC.count)
                let generationAfter = other.photoSorter.identity.state.withLockedValue { $0.generation }
                XCTAssertEqual(generationAfter, generationBefore, "a merge is replayed from the change log, not by reloading everything")
            }
        }
    }

    /// A changed file's faces leave every instance's index: the instance that re-ingested it logs the removals, and
    /// another instance on the same PostgreSQL drops them at its next catch-up (before, it kept them until restart).
    static func otherInstancesForgetFacesOfAChangedFile() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("photo-sorter-changed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = folder.appendingPathComponent("photo.jpg")
        try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama.jpg"), to: target)
        try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama2.jpg"), to: folder.appendingPathComponent("other.jpg"))
        try await TestService.run(.postgres) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            try await withOtherInstance(of: service) { other in
                let listed = try await service.request(.GET, "/persons").decode(PersonPage.self).persons
                let obama = try XCTUnwrap(listed.first).personID
                XCTAssertEqual(other.photoSorter.identity.state.withLockedValue { $0.index.faceCount(of: obama) }, 2)

                // Another picture at the same path (Biden, a different size and content): Obama's face there is gone.
                try FileManager.default.removeItem(at: target)
                try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/biden/biden.jpg"), to: target)
                _ = try await service.waitUntilDone(try await service.ingest(folder))
                let obamaNow = try await service.request(.GET, "/person/\(obama)").decode(PersonView.self)
                XCTAssertEqual(obamaNow.faceCount, 1)

                try await other.photoSorter.identity.catchUpNow()
                let (index, generation) = other.photoSorter.identity.state.withLockedValue { ($0.index, $0.generation) }
                XCTAssertEqual(index.faceCount(of: obama), 1, "the other instance still holds the removed face")
                XCTAssertEqual(generation, service.services.identity.state.withLockedValue { $0.generation })
            }
        }
    }

    /// Runs `body` with a second instance (no background work) on the PostgreSQL database of `service`, and shuts it
    /// down afterwards whatever happens.
    private static func withOtherInstance(of service: TestService, _ body: (Application) async throws -> Void) async throws {
        var config = service.config
        config.port = service.config.port + 1
        let other = try await Application.make(Environment(name: "testing", arguments: ["photo-sorter-tests", "serve"]))
        other.logger.logLevel = .warning
        do {
            try await configure(other, config: config, backgroundWork: false)
            try await body(other)
        } catch {
            try? await other.asyncShutdown()
            throw error
        }
        try await other.asyncShutdown()
    }

    /// A person a correction left without faces keeps its row, so its id is never handed to somebody else
    /// (SQLite reuses the highest deleted rowid).
    static func emptiedPersonIDsAreNeverReused(_ flavor: DatabaseFlavor) async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
            let faces = try await faces(of: people[0].personID, service)
            let split = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [faces[0].faceID], toPersonID: nil))
                .decode(MoveResult.self)
            let rejected = try await service.request(.POST, "/faces/\(faces[0].faceID)/reject").decode(RejectResult.self)
            XCTAssertEqual(rejected.rejectedPersonID, split.personID)
            let emptied = try await service.request(.GET, "/person/\(split.personID)").decode(PersonView.self)
            XCTAssertEqual(emptied.faceCount, 0)
            let next = try await service.request(.POST, "/faces/move", json: MoveRequest(faceIDs: [faces[1].faceID], toPersonID: nil))
                .decode(MoveResult.self)
            XCTAssertGreaterThan(next.personID, split.personID)
            try await assertConsistent(service)
        }
    }

    /// Sort half of lfw_small (every other photo of each person), then the rest: of the faces placed in the first
    /// run, at most 1% end under another id (following redirects of recorded merges).
    static func idsStayStableAsTheLibraryGrows(_ flavor: DatabaseFlavor) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("photo-sorter-halves-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let lfw = URL.faces("lfw_small")
        for person in try FileManager.default.contentsOfDirectory(atPath: lfw.path).sorted() {
            let files = try FileManager.default.contentsOfDirectory(atPath: lfw.appendingPathComponent(person).path).sorted()
            for (n, file) in files.enumerated() {
                let half = root.appendingPathComponent(n % 2 == 0 ? "first" : "second").appendingPathComponent(person)
                try FileManager.default.createDirectory(at: half, withIntermediateDirectories: true)
                try FileManager.default.createSymbolicLink(at: half.appendingPathComponent(file),
                                                           withDestinationURL: lfw.appendingPathComponent(person).appendingPathComponent(file))
            }
        }
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(root.appendingPathComponent("first")))
            _ = try await recluster(service)
            let before = try await facePersons(service)
            _ = try await service.waitUntilDone(try await service.ingest(root.appendingPathComponent("second")))
            let result = try await recluster(service)
            let after = try await facePersons(service)
            let redirects = try await service.services.database.sql.raw("SELECT id, merged_into FROM persons WHERE merged_into IS NOT NULL")
                .all().reduce(into: [Int64: Int64]()) { $0[try $1.decode(column: "id", as: Int64.self)] = try $1.decode(column: "merged_into", as: Int64.self) }
            let moved = before.filter { face, person in after[face] != (redirects[person] ?? person) }
            XCTAssertGreaterThan(before.count, 250)
            XCTAssertLessThanOrEqual(Double(moved.count), 0.01 * Double(before.count),
                                     "\(moved.count) of \(before.count) first-run faces changed id; recluster: \(result)")
        }
    }

    // MARK: Helpers

    static func faces(of person: Int64, _ service: TestService) async throws -> [FaceView] {
        try await service.request(.GET, "/person/\(person)/faces?limit=1000").decode(FacePage.self).faces
    }

    /// Two of `candidates` that no photo shows together (so they can be merged), the first such pair in order.
    static func twoPersonsNeverTogether(_ candidates: [Int64], _ service: TestService) async throws -> (Int64, Int64) {
        var photos: [Int64: Set<Int64>] = [:]
        for person in candidates {
            photos[person] = Set(try await service.request(.GET, "/person/\(person)/photos?limit=1000").decode(PhotoPage.self).photos.map(\.photoID))
        }
        for (i, first) in candidates.enumerated() {
            for second in candidates.dropFirst(i + 1) where photos[first]!.isDisjoint(with: photos[second]!) { return (first, second) }
        }
        throw TestService.UnexpectedReply(description: "every two of persons \(candidates) share a photo")
    }

    static func recluster(_ service: TestService) async throws -> ReclusterResult {
        let started = try await service.request(.POST, "/recluster")
        XCTAssertEqual(started.status, .accepted, started.reason)
        let jobID = try started.decode(ReclusterStatus.self).jobID
        for _ in 0..<600 {
            let status = try await service.request(.GET, "/recluster/\(jobID)").decode(ReclusterStatus.self)
            if status.done {
                XCTAssertEqual(status.status, "COMPLETED", status.error ?? "")
                return try XCTUnwrap(status.result)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestService.UnexpectedReply(description: "recluster \(jobID) did not finish in 60 s")
    }

    static func confirmedFaces(_ service: TestService) async throws -> [Int64: Int64] {
        try await service.services.database.sql.raw("SELECT id, person_id FROM embeddings WHERE confirmed = \(true)").all()
            .reduce(into: [:]) { $0[try $1.decode(column: "id", as: Int64.self)] = try $1.decode(column: "person_id", as: Int64.self) }
    }

    static func facePersons(_ service: TestService) async throws -> [Int64: Int64] {
        try await service.services.database.sql.raw("SELECT id, person_id FROM embeddings").all()
            .reduce(into: [:]) { $0[try $1.decode(column: "id", as: Int64.self)] = try $1.decode(column: "person_id", as: Int64.self) }
    }

    /// Every row corrections touch, as text: equal snapshots mean nothing changed.
    static func snapshot(_ service: TestService) async throws -> [String] {
        let sql = service.services.database.sql
        var lines: [String] = []
        for query: SQLQueryString in [
            "SELECT id, person_id, confirmed, similarity, runner_up_person_id FROM embeddings ORDER BY id",
            "SELECT id, display_name, hidden, merged_into, face_count, photo_count FROM persons ORDER BY id",
            "SELECT embedding_id, person_id FROM face_rejections ORDER BY embedding_id, person_id",
            "SELECT photo_id, person_id FROM photo_persons ORDER BY photo_id, person_id",
            "SELECT id, person_ids FROM photos ORDER BY id",
        ] {
            for row in try await sql.raw(query).all() {
                lines.append(row.allColumns.map { "\($0)=\(describe(row, $0))" }.joined(separator: " "))
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

    /// Derived data agrees with the faces: counts, photo_persons, photos.person_ids, and the in-memory index.
    static func assertConsistent(_ service: TestService, file: StaticString = #filePath, line: UInt = #line) async throws {
        let sql = service.services.database.sql
        var facesOf: [Int64: Int] = [:], photosOf: [Int64: Set<Int64>] = [:], personsOfPhoto: [Int64: [Int64]] = [:]
        for row in try await sql.raw("SELECT photo_id, person_id FROM embeddings ORDER BY photo_id, face_index").all() {
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
        for photo in try await service.photos() where photo.status == .processed {
            XCTAssertEqual(photo.personIDs, personsOfPhoto[photo.photoID] ?? [], "person_ids of photo \(photo.photoID)", file: file, line: line)
        }
        let index = service.services.identity.state.withLockedValue { $0.index }
        XCTAssertEqual(index.personCount, facesOf.count, "persons in the index", file: file, line: line)
        for (person, count) in facesOf {
            XCTAssertEqual(index.faceCount(of: person), count, "faces of \(person) in the index", file: file, line: line)
        }
    }
}
