import Foundation
import PhotoSorterCore
import XCTest

final class ExportWriterTests: XCTestCase {
    private var root: URL!
    private var library: String { root.appendingPathComponent("library").path }
    private var exportDir: String { root.appendingPathComponent("export").path }
    private let files = FileManager.default

    override func setUpWithError() throws {
        root = files.temporaryDirectory.appendingPathComponent("export-\(UUID().uuidString)")
        try files.createDirectory(atPath: root.appendingPathComponent("library").path, withIntermediateDirectories: true)
        for name in ["1.jpg", "2.jpg", "3.jpg"] { try photo(name) }
    }

    override func tearDownWithError() throws {
        try? files.removeItem(at: root)
    }

    private func photo(_ name: String, _ content: String? = nil) throws {
        try Data((content ?? "photo \(name)").utf8).write(to: URL(fileURLWithPath: library + "/" + name))
    }

    private func person(_ id: Int64, _ name: String?, _ photos: [String]) -> ExportPerson {
        ExportPerson(personID: id, displayName: name,
                     photos: photos.map { ExportPhoto(photoID: Int64($0.prefix { $0 != "." })!, path: library + "/" + $0) })
    }

    @discardableResult
    private func export(_ persons: [ExportPerson], _ link: ExportLinkMode = .symlink) throws -> ExportReport {
        try ExportWriter(directory: exportDir, link: link).export(persons)
    }

    private func assertCounts(_ report: ExportReport, persons: Int? = nil, files: Int? = nil, created: Int? = nil,
                              removed: Int? = nil, unchanged: Int? = nil, missing: Int? = nil, skipped: Int? = nil,
                              _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
        let expected: [(String, Int?, Int)] = [
            ("persons", persons, report.persons), ("files", files, report.files), ("created", created, report.created),
            ("removed", removed, report.removed), ("unchanged", unchanged, report.unchanged),
            ("missing", missing, report.missing), ("skipped", skipped, report.skipped),
        ]
        for (name, want, got) in expected where want != nil {
            XCTAssertEqual(got, want, "\(name) \(message)", file: file, line: line)
        }
    }

    private func path(_ relative: String) -> String { exportDir + "/" + relative }

    private func exists(_ relative: String) -> Bool {
        (try? files.attributesOfItem(atPath: path(relative))) != nil
    }

    private func inode(_ path: String) throws -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
        return UInt64(info.st_ino)
    }

    private func manifest() throws -> ExportManifest {
        try JSONDecoder().decode(ExportManifest.self, from: Data(contentsOf: URL(fileURLWithPath: path(ExportManifest.fileName))))
    }

    // MARK: - Link modes

    func testSymlinkExportLinksEachPhotoByAbsolutePathAndRecordsItInTheManifest() throws {
        let report = try export([person(1, "Ann", ["1.jpg", "2.jpg"]), person(2, nil, ["2.jpg"])])
        XCTAssertEqual(try files.destinationOfSymbolicLink(atPath: path("Ann/1.jpg")), library + "/1.jpg")
        XCTAssertEqual(try files.destinationOfSymbolicLink(atPath: path("person-2/2.jpg")), library + "/2.jpg")
        assertCounts(report, persons: 2, files: 3, created: 3, removed: 0, unchanged: 0)
        let manifest = try manifest()
        XCTAssertEqual(manifest.link, .symlink)
        XCTAssertEqual(manifest.entries.keys.sorted(), ["Ann/1.jpg", "Ann/2.jpg", "person-2/2.jpg"])
    }

    func testHardlinkExportSharesThePhotosInode() throws {
        try export([person(1, "Ann", ["1.jpg"])], .hardlink)
        XCTAssertEqual(try files.attributesOfItem(atPath: path("Ann/1.jpg"))[.type] as? FileAttributeType, .typeRegular)
        XCTAssertEqual(try inode(path("Ann/1.jpg")), try inode(library + "/1.jpg"))
    }

    func testCopyExportIsAnIndependentFileWithTheSameContent() throws {
        try export([person(1, "Ann", ["1.jpg"])], .copy)
        XCTAssertEqual(try String(contentsOfFile: path("Ann/1.jpg"), encoding: .utf8), "photo 1.jpg")
        XCTAssertNotEqual(try inode(path("Ann/1.jpg")), try inode(library + "/1.jpg"))
        XCTAssertEqual(try files.contentsOfDirectory(atPath: path("Ann")), ["1.jpg"], "no temporary file is left")
    }

    func testCopyAndHardlinkOfASymlinkedPhotoHoldThePhotoItself() throws {
        try files.createSymbolicLink(atPath: library + "/4.jpg", withDestinationPath: library + "/1.jpg")
        try export([person(1, "Ann", ["4.jpg"])], .hardlink)
        XCTAssertEqual(try inode(path("Ann/4.jpg")), try inode(library + "/1.jpg"))
        try export([person(1, "Ann", ["4.jpg"])], .copy)
        XCTAssertEqual(try files.attributesOfItem(atPath: path("Ann/4.jpg"))[.type] as? FileAttributeType, .typeRegular)
        XCTAssertEqual(try String(contentsOfFile: path("Ann/4.jpg"), encoding: .utf8), "photo 1.jpg")
    }

    // MARK: - Reruns

    func testRerunWithNothingChangedChangesNothing() throws {
        for mode in ExportLinkMode.allCases {
            try export([person(1, "Ann", ["1.jpg", "2.jpg"])], mode)
            let report = try export([person(1, "Ann", ["1.jpg", "2.jpg"])], mode)
            assertCounts(report, files: 2, created: 0, removed: 0, unchanged: 2, "\(mode)")
        }
    }

    func testRerunAddsNewPhotosMovesMovedOnesAndRemovesOnlyItsOwnFiles() throws {
        try export([person(1, "Ann", ["1.jpg", "2.jpg"]), person(2, "Bob", ["3.jpg"]), person(3, "Cy", ["3.jpg"])])
        try Data("mine".utf8).write(to: URL(fileURLWithPath: path("notes.txt")))
        try Data("mine".utf8).write(to: URL(fileURLWithPath: path("Bob/keep-me.txt")))

        // Photo 2 moved from Ann to Bob, photo 1 joined Bob, photo 3 left Bob, and Cy is no longer exported.
        let report = try export([person(1, "Ann", ["1.jpg"]), person(2, "Bob", ["1.jpg", "2.jpg"])])
        assertCounts(report, created: 2, removed: 3, unchanged: 1)
        XCTAssertTrue(exists("Ann/1.jpg"))
        XCTAssertFalse(exists("Ann/2.jpg"))
        XCTAssertTrue(exists("Bob/1.jpg") && exists("Bob/2.jpg"))
        XCTAssertFalse(exists("Bob/3.jpg"))
        XCTAssertFalse(exists("Cy"), "a folder emptied of our files goes")
        XCTAssertTrue(exists("notes.txt") && exists("Bob/keep-me.txt"), "the user's files stay")
        XCTAssertEqual(try manifest().entries.keys.sorted(), ["Ann/1.jpg", "Bob/1.jpg", "Bob/2.jpg"])
    }

    func testFolderThatStillHoldsAUserFileStaysWhenItsPersonIsGone() throws {
        try export([person(1, "Ann", ["1.jpg"])])
        try Data("mine".utf8).write(to: URL(fileURLWithPath: path("Ann/mine.txt")))
        let report = try export([])
        XCTAssertEqual(report.removed, 1)
        XCTAssertEqual(try files.contentsOfDirectory(atPath: path("Ann")), ["mine.txt"])
    }

    func testFileTheUserReplacedOrEditedIsNeverRemoved() throws {
        try export([person(1, "Ann", ["1.jpg"]), person(2, "Bob", ["2.jpg"])], .copy)
        try files.removeItem(atPath: path("Ann/1.jpg"))
        try Data("the user's own".utf8).write(to: URL(fileURLWithPath: path("Ann/1.jpg")))
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path("Bob/2.jpg")))
        handle.seekToEndOfFile()
        handle.write(Data(" edited in place".utf8))
        handle.closeFile()

        let report = try export([], .copy)
        XCTAssertEqual(report.removed, 0)
        XCTAssertEqual(try String(contentsOfFile: path("Ann/1.jpg"), encoding: .utf8), "the user's own")
        XCTAssertEqual(try String(contentsOfFile: path("Bob/2.jpg"), encoding: .utf8), "photo 2.jpg edited in place")
        XCTAssertEqual(report.problems.map(\.kind), [.changedByUser, .changedByUser])
        XCTAssertEqual(try manifest().entries, [:], "files no longer ours are forgotten")
    }

    func testSymlinkTheUserRepointedIsNeverRemoved() throws {
        try export([person(1, "Ann", ["1.jpg"])])
        try files.removeItem(atPath: path("Ann/1.jpg"))
        try files.createSymbolicLink(atPath: path("Ann/1.jpg"), withDestinationPath: library + "/3.jpg")
        let report = try export([])
        XCTAssertEqual(report.removed, 0)
        XCTAssertEqual(try files.destinationOfSymbolicLink(atPath: path("Ann/1.jpg")), library + "/3.jpg")
    }

    func testPathTheUserAlreadyUsesIsLeftAloneAndReported() throws {
        try files.createDirectory(atPath: path("Ann"), withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: path("Ann/1.jpg")))
        let report = try export([person(1, "Ann", ["1.jpg", "2.jpg"])])
        assertCounts(report, created: 1, skipped: 1)
        XCTAssertEqual(report.problems, [ExportProblem(kind: .occupied, path: "Ann/1.jpg", detail: library + "/1.jpg")])
        XCTAssertEqual(try String(contentsOfFile: path("Ann/1.jpg"), encoding: .utf8), "mine")
        XCTAssertEqual(try manifest().entries.keys.sorted(), ["Ann/2.jpg"], "the user's file is not recorded as ours")
        try export([])
        XCTAssertEqual(try String(contentsOfFile: path("Ann/1.jpg"), encoding: .utf8), "mine")
    }

    func testMissingSourcePhotoIsCountedAndSkipped() throws {
        let report = try export([person(1, "Ann", ["1.jpg", "9.jpg"])])
        assertCounts(report, files: 1, created: 1, missing: 1)
        XCTAssertEqual(report.problems.map(\.kind), [.missingSource])
        XCTAssertFalse(exists("Ann/9.jpg"))
    }

    func testFileTheUserDeletedFromTheExportIsMadeAgain() throws {
        try export([person(1, "Ann", ["1.jpg"])])
        try files.removeItem(atPath: path("Ann/1.jpg"))
        let report = try export([person(1, "Ann", ["1.jpg"])])
        assertCounts(report, created: 1, unchanged: 0)
        XCTAssertTrue(exists("Ann/1.jpg"))
    }

    func testSwitchingTheLinkModeReplacesOurFiles() throws {
        try export([person(1, "Ann", ["1.jpg"])], .symlink)
        let report = try export([person(1, "Ann", ["1.jpg"])], .copy)
        assertCounts(report, created: 1, removed: 1)
        XCTAssertEqual(try files.attributesOfItem(atPath: path("Ann/1.jpg"))[.type] as? FileAttributeType, .typeRegular)
        XCTAssertEqual(try manifest().link, .copy)
        try export([person(1, "Ann", ["1.jpg"])], .hardlink)
        XCTAssertEqual(try inode(path("Ann/1.jpg")), try inode(library + "/1.jpg"))
    }

    func testHardLinkToAPhotoThatWasReplacedIsRefreshed() throws {
        try export([person(1, "Ann", ["1.jpg"])], .hardlink)
        try files.removeItem(atPath: library + "/1.jpg")
        try photo("1.jpg", "new version")
        let report = try export([person(1, "Ann", ["1.jpg"])], .hardlink)
        assertCounts(report, created: 1, unchanged: 0)
        XCTAssertEqual(try String(contentsOfFile: path("Ann/1.jpg"), encoding: .utf8), "new version")
    }

    // MARK: - Refusals

    func testUnreadableManifestIsRefusedWithItsPath() throws {
        try files.createDirectory(atPath: exportDir, withIntermediateDirectories: true)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path(ExportManifest.fileName)))
        XCTAssertThrowsError(try export([person(1, "Ann", ["1.jpg"])])) { error in
            guard case ExportError.unreadableManifest(let manifestPath, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(manifestPath, path(ExportManifest.fileName))
        }
        XCTAssertFalse(exists("Ann"), "nothing was written")
    }

    func testManifestEntryOutsideTheExportTreeIsRefusedAndNothingIsRemoved() throws {
        try files.createDirectory(atPath: exportDir, withIntermediateDirectories: true)
        let outside = ExportManifest(link: .symlink, entries: ["../library/1.jpg": .init(source: library + "/1.jpg", stamp: nil)])
        try JSONEncoder().encode(outside).write(to: URL(fileURLWithPath: path(ExportManifest.fileName)))
        XCTAssertThrowsError(try export([])) { error in
            guard case ExportError.unreadableManifest = error else { return XCTFail("\(error)") }
        }
        XCTAssertTrue(files.fileExists(atPath: library + "/1.jpg"))
    }

    func testManifestOfANewerVersionIsRefused() throws {
        try files.createDirectory(atPath: exportDir, withIntermediateDirectories: true)
        try Data(#"{"version": 2}"#.utf8).write(to: URL(fileURLWithPath: path(ExportManifest.fileName)))
        XCTAssertThrowsError(try export([])) { error in
            XCTAssertEqual(error as? ExportError, .unsupportedManifestVersion(path: path(ExportManifest.fileName), version: 2))
        }
    }

    func testTargetThatIsAFileIsRefused() throws {
        try Data().write(to: URL(fileURLWithPath: exportDir))
        XCTAssertThrowsError(try export([])) { error in
            XCTAssertEqual(error as? ExportError, .notADirectory(path: exportDir))
        }
    }

    func testSummaryEncodesCountsWithoutTheProblemList() throws {
        let report = try export([person(1, "Ann", ["1.jpg", "9.jpg"])])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["dir", "link", "persons", "files", "created", "removed", "unchanged", "missing", "skipped"])
        XCTAssertEqual(object["link"] as? String, "symlink")
        XCTAssertEqual(object["dir"] as? String, exportDir)
    }
}
