import Foundation
import PhotoSorterCore
import XCTest

final class ExportPlanTests: XCTestCase {
    private func person(_ id: Int64, _ name: String?, _ photos: [(Int64, String)]) -> ExportPerson {
        ExportPerson(personID: id, displayName: name, photos: photos.map { ExportPhoto(photoID: $0.0, path: $0.1) })
    }

    private func manifest(_ plan: ExportPlan, link: ExportLinkMode = .symlink) -> ExportManifest {
        ExportManifest(link: link, entries: plan.wanted.mapValues { ExportManifest.Entry(source: $0, stamp: nil) })
    }

    // MARK: - Naming

    func testFolderIsTheDisplayNameAndFileIsThePhotosFileName() {
        let plan = ExportPlan(persons: [person(4, "Ann Lee", [(10, "/lib/2020/IMG_1.jpg")])], link: .symlink, previous: nil)
        XCTAssertEqual(plan.wanted, ["Ann Lee/IMG_1.jpg": "/lib/2020/IMG_1.jpg"])
        XCTAssertEqual(plan.folders, ["Ann Lee"])
    }

    func testUnnamedPersonGetsAPersonIDFolder() {
        XCTAssertEqual(ExportPlan.folderNames(for: [person(7, nil, [(1, "/a.jpg")]), person(8, "", [(2, "/b.jpg")])]),
                       [7: "person-7", 8: "person-8"])
    }

    func testAPhotoWithThreePeopleAppearsInEachOfTheirFolders() {
        let photo = (Int64(5), "/lib/group.jpg")
        let plan = ExportPlan(persons: [person(1, "A", [photo]), person(2, "B", [photo]), person(3, "C", [photo])],
                              link: .symlink, previous: nil)
        XCTAssertEqual(plan.wanted.keys.sorted(), ["A/group.jpg", "B/group.jpg", "C/group.jpg"])
    }

    func testPersonWithoutPhotosGetsNoFolderAndAPhotoListedTwiceIsExportedOnce() {
        let plan = ExportPlan(persons: [person(1, "Empty", []), person(2, "Twice", [(5, "/x.jpg"), (5, "/x.jpg")])],
                              link: .symlink, previous: nil)
        XCTAssertEqual(plan.wanted, ["Twice/x.jpg": "/x.jpg"])
        XCTAssertEqual(plan.folders, ["Twice"])
    }

    func testDisplayNamesAreMadeSafeAsOneFolderName() {
        let names: [(Int64, String)] = [
            (1, "AC/DC"), (2, ".."), (3, "."), (4, ".hidden"), (5, "  Ann  "), (6, "Bob\u{0}Ray"), (7, "line\nbreak"),
            (8, " . . "), (9, "../../etc"),
        ]
        let folders = ExportPlan.folderNames(for: names.map { person($0.0, $0.1, [($0.0, "/p.jpg")]) })
        XCTAssertEqual(folders, [1: "AC DC", 2: "person-2", 3: "person-3", 4: "hidden", 5: "Ann", 6: "Bob Ray",
                                 7: "line break", 8: "person-8", 9: "etc"])
    }

    func testLongDisplayNameIsCappedInCharactersAndBytes() {
        let folders = ExportPlan.folderNames(for: [person(1, String(repeating: "a", count: 300), [(1, "/p.jpg")]),
                                                   person(2, String(repeating: "😀", count: 300), [(2, "/p.jpg")])])
        XCTAssertEqual(folders[1], String(repeating: "a", count: 100))
        XCTAssertEqual(folders[2], String(repeating: "😀", count: 50), "4-byte characters stop at 200 bytes")
    }

    func testANameSeveralPersonsShareGetsTheIDSuffixForEachOfThemIgnoringCase() {
        let persons = [person(7, "ann", [(1, "/a.jpg")]), person(3, "Ann", [(2, "/b.jpg")]), person(5, "Bob", [(3, "/c.jpg")]),
                       person(9, nil, [(4, "/d.jpg")]), person(11, "person-9", [(5, "/e.jpg")])]
        let expected: [Int64: String] = [3: "Ann (3)", 7: "ann (7)", 5: "Bob", 9: "person-9 (9)", 11: "person-9 (11)"]
        XCTAssertEqual(ExportPlan.folderNames(for: persons), expected)
        XCTAssertEqual(ExportPlan.folderNames(for: persons.reversed()), expected, "the input order does not matter")
    }

    func testASuffixedNameThatEqualsAnotherPersonsNameIsDisambiguatedToo() {
        let persons = [person(5, "Ann", [(1, "/a.jpg")]), person(6, "Ann", [(2, "/b.jpg")]), person(7, "Ann (5)", [(3, "/c.jpg")])]
        XCTAssertEqual(ExportPlan.folderNames(for: persons), [5: "Ann (5)", 6: "Ann (6)", 7: "Ann (5) (7)"])
    }

    func testPhotosSharingAFileNameInOneFolderGetThePhotoIDBeforeTheExtension() {
        let photos = [ExportPhoto(photoID: 10, path: "/a/IMG_1.jpg"), ExportPhoto(photoID: 11, path: "/b/img_1.JPG"),
                      ExportPhoto(photoID: 12, path: "/a/scan"), ExportPhoto(photoID: 13, path: "/b/scan"),
                      ExportPhoto(photoID: 14, path: "/a/archive.tar.gz"), ExportPhoto(photoID: 15, path: "/a/unique.png")]
        XCTAssertEqual(ExportPlan.fileNames(for: photos), [10: "IMG_1-10.jpg", 11: "img_1-11.JPG", 12: "scan-12", 13: "scan-13",
                                                           14: "archive.tar.gz", 15: "unique.png"])
    }

    func testSameFileNameInDifferentFoldersIsNotSuffixed() {
        let plan = ExportPlan(persons: [person(1, "A", [(1, "/x/IMG.jpg")]), person(2, "B", [(2, "/y/IMG.jpg")])],
                              link: .symlink, previous: nil)
        XCTAssertEqual(plan.wanted, ["A/IMG.jpg": "/x/IMG.jpg", "B/IMG.jpg": "/y/IMG.jpg"])
    }

    func testSuffixedFileNameStaysWithinTheFileSystemLimit() {
        let long = String(repeating: "n", count: 250) + ".jpeg"
        let names = ExportPlan.fileNames(for: [ExportPhoto(photoID: 123, path: "/a/" + long), ExportPhoto(photoID: 4, path: "/b/" + long)])
        XCTAssertEqual(names[123]?.utf8.count, 255)
        XCTAssertEqual(names[123].map { String($0.suffix(9)) }, "-123.jpeg")
    }

    // MARK: - Rerun diff

    func testFirstRunCreatesEveryWantedFile() {
        let plan = ExportPlan(persons: [person(1, "A", [(1, "/1.jpg"), (2, "/2.jpg")])], link: .symlink, previous: nil)
        XCTAssertEqual(plan.create, ["A/1.jpg", "A/2.jpg"])
        XCTAssertEqual(plan.keep, [])
        XCTAssertEqual(plan.remove, [])
    }

    func testRerunKeepsWhatIsThereAndCreatesAnAddedPhoto() {
        let first = ExportPlan(persons: [person(1, "A", [(1, "/1.jpg")])], link: .symlink, previous: nil)
        let second = ExportPlan(persons: [person(1, "A", [(1, "/1.jpg"), (2, "/2.jpg")])], link: .symlink, previous: manifest(first))
        XCTAssertEqual(second.keep, ["A/1.jpg"])
        XCTAssertEqual(second.create, ["A/2.jpg"])
        XCTAssertEqual(second.remove, [])
    }

    func testPhotoMovedBetweenPersonsIsRemovedFromTheOldFolderAndCreatedInTheNew() {
        let first = ExportPlan(persons: [person(1, "A", [(1, "/1.jpg"), (2, "/2.jpg")]), person(2, "B", [(3, "/3.jpg")])],
                               link: .symlink, previous: nil)
        let second = ExportPlan(persons: [person(1, "A", [(1, "/1.jpg")]), person(2, "B", [(2, "/2.jpg"), (3, "/3.jpg")])],
                                link: .symlink, previous: manifest(first))
        XCTAssertEqual(second.remove, ["A/2.jpg"])
        XCTAssertEqual(second.create, ["B/2.jpg"])
        XCTAssertEqual(second.keep, ["A/1.jpg", "B/3.jpg"])
    }

    func testRemovedPersonsFilesAreRemovedAndTheFolderIsNoLongerWanted() {
        let first = ExportPlan(persons: [person(1, "A", [(1, "/1.jpg")]), person(2, "B", [(2, "/2.jpg")])], link: .symlink, previous: nil)
        let second = ExportPlan(persons: [person(1, "A", [(1, "/1.jpg")])], link: .symlink, previous: manifest(first))
        XCTAssertEqual(second.remove, ["B/2.jpg"])
        XCTAssertEqual(second.create, [])
        XCTAssertEqual(second.folders, ["A"])
    }

    func testRenamedPersonMovesEveryFileToTheNewFolder() {
        let first = ExportPlan(persons: [person(1, nil, [(1, "/1.jpg")])], link: .symlink, previous: nil)
        let second = ExportPlan(persons: [person(1, "Ann", [(1, "/1.jpg")])], link: .symlink, previous: manifest(first))
        XCTAssertEqual(second.remove, ["person-1/1.jpg"])
        XCTAssertEqual(second.create, ["Ann/1.jpg"])
    }

    func testAPathWhoseSourceChangedIsRemovedAndCreatedAgain() {
        // A second IMG.jpg joins the folder: both become suffixed, and the unsuffixed path is gone.
        let first = ExportPlan(persons: [person(1, "A", [(1, "/x/IMG.jpg")])], link: .symlink, previous: nil)
        let second = ExportPlan(persons: [person(1, "A", [(1, "/x/IMG.jpg"), (2, "/y/IMG.jpg")])], link: .symlink, previous: manifest(first))
        XCTAssertEqual(second.remove, ["A/IMG.jpg"])
        XCTAssertEqual(second.create, ["A/IMG-1.jpg", "A/IMG-2.jpg"])
        // The same path pointing at another photo is replaced.
        let third = ExportPlan(persons: [person(1, "A", [(3, "/z/IMG.jpg")])], link: .symlink, previous: manifest(first))
        XCTAssertEqual(third.remove, ["A/IMG.jpg"])
        XCTAssertEqual(third.create, ["A/IMG.jpg"])
    }

    func testSwitchingTheLinkModeReplacesEveryFile() {
        let persons = [person(1, "A", [(1, "/1.jpg")])]
        let first = ExportPlan(persons: persons, link: .symlink, previous: nil)
        let second = ExportPlan(persons: persons, link: .copy, previous: manifest(first, link: .symlink))
        XCTAssertEqual(second.remove, ["A/1.jpg"])
        XCTAssertEqual(second.create, ["A/1.jpg"])
        XCTAssertEqual(second.keep, [])
    }

    func testManifestRoundTripsThroughJSONWithItsVersion() throws {
        let stamp = ExportFileStamp(device: 1, inode: 2, size: 3, modifiedNs: 4)
        let manifest = ExportManifest(link: .hardlink, entries: ["A/1.jpg": .init(source: "/1.jpg", stamp: stamp)])
        let data = try JSONEncoder().encode(manifest)
        XCTAssertEqual(try JSONDecoder().decode(ExportManifest.self, from: data), manifest)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(object["version"] as? Int, 1)
        XCTAssertEqual(object["link"] as? String, "hardlink")
    }
}
