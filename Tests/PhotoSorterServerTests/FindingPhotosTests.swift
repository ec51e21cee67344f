import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// Finding photos by people, dates and order (GET /photos, GET /person/{id}/photos, GET /photos/people), proven
/// through the HTTP API on the real (recorded) faces of `face_recognition_examples`.
class FindingPhotosTests: DatabaseTestCase {
    /// Each photo gets the date its analysis reported (EXIF here) with its offset, and the file's time when it
    /// reports none; persons show the span of their photos.
    func testPhotosCarryTheirTakenDates() async throws {
        try await TestService.run(flavor) { service in
            let folder = URL.faces("face_recognition_examples")
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            for photo in try await service.photos() where photo.status == .processed {
                let relative = "face_recognition_examples/" + photo.path.dropFirst(folder.path.count + 1)
                let expected = try XCTUnwrap(FakeMLService.takenDate(of: relative), relative)
                XCTAssertEqual(photo.takenAt, expected.iso8601, relative)
                XCTAssertEqual(photo.takenAtSource, .exif, relative)
            }
            let person = try await service.request(.GET, "/persons?limit=1").decode(PersonPage.self).persons[0]
            let taken = try await allPhotos(service, "/person/\(person.personID)/photos?order=taken").map { String($0.takenAt!.prefix(19)) }
            let view = try await service.request(.GET, "/person/\(person.personID)").decode(PersonView.self)
            XCTAssertEqual(view.firstTaken, taken.first)
            XCTAssertEqual(view.lastTaken, taken.last)
            XCTAssertEqual(person.firstTaken, taken.first)
            XCTAssertEqual(person.lastTaken, taken.last)
        }
        try await TestService.run(flavor, ml: .init(sendsDates: false)) { service in
            let folder = URL.faces("face_recognition_examples/obama")
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            for photo in try await service.photos() {
                let modified = try FileManager.default.attributesOfItem(atPath: photo.path)[.modificationDate] as! Date
                let expected = TakenDate.fileTime(modifiedAtMs: Int64((modified.timeIntervalSince1970 * 1000).rounded(.down)))
                XCTAssertEqual(photo.takenAt, expected.iso8601)
                XCTAssertEqual(photo.takenAtSource, .mtime)
            }
        }
    }

    /// `match=all` lists exactly the photos showing every listed person, `any` those showing one of them; a date
    /// range and both taken orders page through each photo once, in order; the person's own listing agrees.
    func testPhotosFoundByPeopleDatesAndOrder() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            let photos = try await service.photos().filter { $0.status == .processed }
            let group = try XCTUnwrap(photos.max { $0.personIDs.count < $1.personIDs.count })
            let (a, b) = (group.personIDs[0], group.personIDs[1])
            let both = Set(photos.filter { $0.personIDs.contains(a) && $0.personIDs.contains(b) }.map(\.photoID))
            let either = Set(photos.filter { $0.personIDs.contains(a) || $0.personIDs.contains(b) }.map(\.photoID))
            XCTAssertLessThan(both.count, either.count, "the fixture needs photos of only one of them")

            for order in PhotoQuery.Order.allCases {
                let all = try await allPhotos(service, "/photos?persons=\(a),\(b)&match=all&order=\(order.rawValue)")
                XCTAssertEqual(Set(all.map(\.photoID)), both, order.rawValue)
                let any = try await allPhotos(service, "/photos?persons=\(b),\(a)&match=any&order=\(order.rawValue)")
                XCTAssertEqual(any.map(\.photoID).count, either.count, "each photo once (\(order.rawValue))")
                XCTAssertEqual(Set(any.map(\.photoID)), either, order.rawValue)
                assertOrdered(any, order)
            }

            let everything = try await allPhotos(service, "/photos?order=taken")
            let photoCount = try await service.photos().count
            XCTAssertEqual(everything.count, photoCount)
            assertOrdered(everything, .taken)
            let newestFirst = try await allPhotos(service, "/photos?order=taken_desc")
            XCTAssertEqual(newestFirst.map(\.photoID), everything.map(\.photoID).reversed())

            // 2012–2014, both ends included, on the photo's own wall clock.
            let inRange = photos.filter { ("2012-01-01"..."2014-12-31T23:59:59").contains($0.takenAt!.prefix(19)) }
            XCTAssertFalse(inRange.isEmpty)
            let ranged = try await allPhotos(service, "/photos?from=2012-01-01&to=2014-12-31&order=taken&status=PROCESSED")
            XCTAssertEqual(Set(ranged.map(\.photoID)), Set(inRange.map(\.photoID)))
            let ofA = photos.filter { $0.personIDs.contains(a) && inRange.contains($0) }
            let personRanged = try await allPhotos(service, "/person/\(a)/photos?from=2012-01-01&to=2014-12-31&order=taken_desc")
            XCTAssertEqual(Set(personRanged.map(\.photoID)), Set(ofA.map(\.photoID)))
            assertOrdered(personRanged, .takenDesc)
        }
    }

    /// Keyset paging in taken order returns every photo that was there when it started exactly once, while a
    /// second folder is being added between the pages.
    func testTakenOrderPagingSurvivesPhotosBeingAdded() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/obama")))
            let before = Set(try await service.photos().map(\.photoID))
            var seen: [Int64] = []
            var after: String?
            var adding: String?
            repeat {
                let page = try await service.request(.GET, "/photos?order=taken&limit=2" + (after.map { "&after=\($0)" } ?? ""))
                    .decode(PhotoPage.self)
                seen += page.photos.map(\.photoID)
                after = page.nextAfter
                if adding == nil { adding = try await service.ingest(URL.faces("face_recognition_examples/_group")) }
            } while after != nil
            _ = try await service.waitUntilDone(adding!)
            XCTAssertEqual(seen.count, Set(seen).count, "a photo came twice")
            XCTAssertTrue(before.isSubset(of: Set(seen)), "a photo present from the start was skipped")
        }
    }

    /// Who is in a set of photos: by ids and by folder, with per-person counts; hidden persons are left out.
    func testPeopleInPhotosCountsEachPerson() async throws {
        try await TestService.run(flavor) { service in
            let folder = URL.faces("face_recognition_examples")
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            let groupPhotos = try await service.photos().filter { $0.path.contains("/_group/") }
            var expected: [Int64: Int] = [:]
            for photo in groupPhotos { for person in photo.personIDs { expected[person, default: 0] += 1 } }
            let byIDs = try await service.request(.GET, "/photos/people?ids=" + groupPhotos.map { "\($0.photoID)" }.joined(separator: ","))
                .decode(PeopleInPhotos.self)
            XCTAssertEqual(byIDs.photos, groupPhotos.count)
            XCTAssertEqual(byIDs.photosWithPeople, groupPhotos.filter { !$0.personIDs.isEmpty }.count)
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: byIDs.persons.map { ($0.personID, $0.photoCount) }), expected)
            let byFolder = try await service.request(.GET, "/photos/people?folder=\(folder.path)/_group").decode(PeopleInPhotos.self)
            XCTAssertEqual(byFolder.persons, byIDs.persons)

            let hidden = byIDs.persons[0].personID
            let hiding = try await service.request(.PATCH, "/person/\(hidden)", json: PersonUpdate(hidden: true))
            XCTAssertEqual(hiding.status, .ok)
            let withoutHidden = try await service.request(.GET, "/photos/people?folder=\(folder.path)/_group").decode(PeopleInPhotos.self)
            XCTAssertFalse(withoutHidden.persons.contains { $0.personID == hidden })
        }
    }

    /// Photos analysed before dates were read get them at the next scan from a header read (POST /taken-dates),
    /// not a new analysis; their people's date index follows.
    func testNextScanDatesPhotosAnalysedBefore() async throws {
        try await TestService.run(flavor) { service in
            let folder = URL.faces("face_recognition_examples/obama")
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            let analysed = try await service.photos()
            let sql = service.app.photoSorter.database.sql
            // As a library sorted before this version: the file's time and no source.
            try await sql.raw("UPDATE photos SET taken_at = '1999-01-01T00:00:00', taken_offset = NULL, taken_at_source = NULL").run()
            try await sql.raw("UPDATE photo_persons SET taken_at = '1999-01-01T00:00:00'").run()
            let requestsBefore = service.ml.requestedPhotoIDs.count

            _ = try await service.waitUntilDone(try await service.ingest(folder))
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, requestsBefore, "an unchanged photo was analysed again")
            XCTAssertEqual(Set(service.ml.takenDatePaths.joined()), Set(analysed.map(\.path)))
            for photo in try await service.photos() {
                let relative = "face_recognition_examples/obama/" + photo.path.dropFirst(folder.path.count + 1)
                XCTAssertEqual(photo.takenAt, FakeMLService.takenDate(of: relative)?.iso8601, relative)
                XCTAssertEqual(photo.takenAtSource, .exif)
            }
            let person = analysed.compactMap(\.personIDs.first).first!
            let old = try await service.request(.GET, "/person/\(person)/photos?to=1999-12-31").decode(PhotoPage.self)
            XCTAssertEqual(old.photos.count, 0, "the person's date index kept the old dates")
            let requestsAfter = service.ml.takenDatePaths.count
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            XCTAssertEqual(service.ml.takenDatePaths.count, requestsAfter, "dated photos were read again")
        }
    }

    /// Every malformed query is a 4xx naming the parameter, and a malformed date in a result is refused.
    func testBadPhotoQueriesAreRefused() async throws {
        try await TestService.run(flavor) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples/biden")))
            let person = try await service.photos()[0].personIDs[0]
            for (query, word) in [("persons=abc", "persons"), ("persons=\(person)&match=some", "match"), ("from=2019-02-30", "from"),
                                  ("from=2019-05-01&to=2019-04-01", "after to"), ("order=date", "order"), ("order=taken&after=12", "cursor"),
                                  ("order=taken&after_id=3", "after_id"), ("after=garbage", "after"), ("persons=\(person)&status=PROCESSED", "status"),
                                  ("persons=\(person),\(person)", "twice"), ("persons=999999", "999999")] {
                let reply = try await service.request(.GET, "/photos?" + query)
                XCTAssertTrue((400..<500).contains(reply.status.code), "\(query): \(reply.status)")
                XCTAssertTrue(reply.reason.contains(word), "\(query): \(reply.reason)")
            }
            for query in ["", "ids=1&folder=/tmp", "ids=x", "folder=/no/such/folder"] {
                let reply = try await service.request(.GET, "/photos/people?" + query)
                XCTAssertTrue((400..<500).contains(reply.status.code), "\(query): \(reply.status)")
            }
            let photo = try await service.photos()[0]
            let badDate: [String: Any] = ["photo_id": photo.photoID, "status": "PROCESSED", "detections": [],
                                          "taken": ["local": "2019-13-01T00:00:00", "offset": NSNull(), "source": "exif"]]
            let reply = try await service.request(.POST, "/callback/photo-processed", body: try JSONSerialization.data(withJSONObject: badDate))
            XCTAssertTrue((400..<500).contains(reply.status.code), "\(reply.status)")
        }
    }

    // MARK: Helpers

    /// Every page of `path` (a GET with a query), followed through `next_after` two photos at a time.
    func allPhotos(_ service: TestService, _ path: String) async throws -> [PhotoView] {
        var photos: [PhotoView] = []
        var after: String?
        repeat {
            let page = try await service.request(.GET, path + "&limit=2" + (after.map { "&after=\($0)" } ?? "")).decode(PhotoPage.self)
            photos += page.photos
            after = page.nextAfter
        } while after != nil
        return photos
    }

    func assertOrdered(_ photos: [PhotoView], _ order: PhotoQuery.Order, file: StaticString = #filePath, line: UInt = #line) {
        let keys = photos.map { PhotoKey(id: $0.photoID, taken: String($0.takenAt!.prefix(19))) }
        let query = PhotoQuery(order: order)
        for (earlier, later) in zip(keys, keys.dropFirst()) {
            XCTAssertTrue(query.precedes(earlier, later), "\(earlier) before \(later) in \(order.rawValue)", file: file, line: line)
        }
    }
}

/// The same tests on PostgreSQL (skipped without `PHOTO_SORTER_TEST_POSTGRES_URL`).
final class FindingPhotosTestsOnPostgres: FindingPhotosTests {
    override class var flavor: DatabaseFlavor { .postgres }

    // Declared here only so that test discovery on Linux lists this class (see `DatabaseTestCase`).
    override func testPhotosCarryTheirTakenDates() async throws { try await super.testPhotosCarryTheirTakenDates() }
}
