import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// What the people pages read: the person list (paging, filters, the one-photo minimum) and the review queue
/// (the question each item asks and how each answer settles it), reflecting corrections.
class PeopleListAndReviewTests: DatabaseTestCase {
    /// Listing pages by photo count with filters; the review queue puts the least certain faces first and a
    /// confirmed face leaves it; the person dump carries names and hidden flags.
    func testListingReviewAndDumpReflectCorrections() async throws {
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
            XCTAssertEqual(unnamed.total, all.total.map { $0 - 2 }, "the named and the hidden person are not listed")
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

    /// Keyset paging (`after` = the previous page's `next_after`) lists every person exactly once while new persons
    /// are being added between the pages (a new one at most once: it sorts before or after the cursor and stays
    /// there); the order is most photos first, then the newest; a cursor page carries no counts; a bad cursor, or a
    /// cursor with an offset, is a 400.
    func testKeysetPagingListsEveryPersonOnceWhilePersonsAreAdded() async throws {
        let later = try FollowingFilesTests.Folder("later-persons")
        defer { later.delete() }
        for name in ["Aaron_Peirsol", "Adrien_Brody"] {
            for n in 1...2 { try later.add("lfw_small/\(name)/\(name)_000\(n).jpg", as: "\(name)_\(n).jpg") }
        }
        try await TestService.run(flavor) { service in
            for set in ["face_recognition_examples", "dlib_faces"] {
                _ = try await service.waitUntilDone(try await service.ingest(URL.faces(set)))
            }
            let before = try await service.request(.GET, "/persons?limit=1000&min_photos=1").decode(PersonPage.self).persons.map(\.personID)
            XCTAssertGreaterThan(before.count, 10)
            var listed: [Int64] = []
            var after: String?
            var pages = 0
            repeat {
                let reply = try await service.request(.GET, "/persons?limit=3&min_photos=1" + (after.map { "&after=\($0)" } ?? ""))
                XCTAssertEqual(reply.status, .ok, reply.reason)
                let page = try reply.decode(PersonPage.self)
                if after != nil {
                    XCTAssertNil(page.total, "a cursor page counts nothing")
                    XCTAssertNil(page.nextOffset)
                } else {
                    XCTAssertNotNil(page.total)
                }
                listed += page.persons.map(\.personID)
                after = page.nextAfter
                pages += 1
                if pages == 2 { _ = try await service.waitUntilDone(try await service.ingest(later.url)) }
            } while after != nil && pages < 1000
            XCTAssertEqual(listed.count, Set(listed).count, "a person was listed twice")
            XCTAssertTrue(Set(before).isSubset(of: Set(listed)), "persons missing: \(Set(before).subtracting(listed))")
            let everyone = try await service.request(.GET, "/persons?limit=1000&min_photos=1").decode(PersonPage.self).persons
            XCTAssertGreaterThan(everyone.count, before.count, "persons were added while paging")
            XCTAssertTrue(Set(listed).isSubset(of: Set(everyone.map(\.personID))))
            XCTAssertEqual(everyone.map { [$0.photoCount, Int($0.personID)] }, everyone.map { [$0.photoCount, Int($0.personID)] }
                .sorted { $0.lexicographicallyPrecedes($1) }.reversed(), "most photos first, then the newest")

            for bad in ["/persons?after=12", "/persons?after=x,1", "/persons?after=3,4&offset=5"] {
                let reply = try await service.request(.GET, bad)
                XCTAssertEqual(reply.status, .badRequest, bad)
            }
        }
    }

    /// The people list leaves out persons seen in only one photo unless they are named, says how many it left out,
    /// and lists everyone with `min_photos=1`; the other filters work the same under either; a bad `min_photos`
    /// is a 400 with a reason.
    func testPeopleListLeavesOutOnePhotoPersonsUntilAskedForAll() async throws {
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
            XCTAssertEqual(standard.total, all.total.map { $0 - onePhoto.count })
            XCTAssertEqual(standard.belowMinPhotos, onePhoto.count)
            let firstTwo = try await service.request(.GET, "/persons?limit=2").decode(PersonPage.self)
            XCTAssertEqual(firstTwo.total, standard.total, "total counts the same on every page")
            XCTAssertEqual(firstTwo.nextOffset, standard.total! > 2 ? 2 : nil)
            let three = try await list("&min_photos=3")
            XCTAssertEqual(three.persons.map(\.personID), all.persons.filter { $0.photoCount >= 3 }.map(\.personID))
            XCTAssertEqual(three.belowMinPhotos, all.persons.filter { $0.photoCount < 3 }.count)

            // A named person is listed whatever its photo count, and a name search finds it.
            let named = onePhoto[0].personID
            _ = try await service.request(.PATCH, "/person/\(named)", json: PersonUpdate(displayName: .some("Lin Example")))
            let afterNaming = try await list("")
            XCTAssertTrue(afterNaming.persons.contains { $0.personID == named }, "a named one-photo person is listed by default")
            XCTAssertEqual(afterNaming.total, standard.total.map { $0 + 1 })
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
    func testReviewAsksTheQuestionEachAnswerSettles() async throws {
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
                let own = try await person(try XCTUnwrap(item.face.personID))
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
            let targetNow = try await person(target), emptied = try await person(try XCTUnwrap(moved.face.personID))
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
            _ = try await service.recluster()
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
            try await service.assertConsistent()
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class PeopleListAndReviewTestsOnPostgres: PeopleListAndReviewTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testListingReviewAndDumpReflectCorrections() async throws { try await super.testListingReviewAndDumpReflectCorrections() }
}
