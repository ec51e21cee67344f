import Foundation
import PhotoSorterCore
import XCTest

final class ScannerTests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("scanner-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("b/nested"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent(".thumbnails"), withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    private func write(_ relative: String, _ bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]) throws {
        try Data(bytes).write(to: root.appendingPathComponent(relative))
    }

    func testScanStreamsWhitelistedExtensionsInAnyCaseInStableDepthFirstOrder() throws {
        try write("z.JPG")
        try write("a.jpeg")
        try write("notes.txt")
        try write("b/photo.HeIc")
        try write("b/nested/raw.NEF")
        try write("b/nested/raw.cr2")
        try write("c.png")
        try write(".thumbnails/hidden.jpg")
        let names = DirectoryScanner(root: root.path).map { String($0.path.dropFirst(root.path.count + 1)) }
        XCTAssertEqual(names, ["a.jpeg", "b/nested/raw.NEF", "b/nested/raw.cr2", "b/photo.HeIc", "c.png", "z.JPG"])
        XCTAssertEqual(DirectoryScanner(root: root.path).map(\.format), [.jpeg, .nef, .cr2, .heif, .png, .jpeg])
    }

    func testNonRecursiveScanStaysInTheTopFolder() throws {
        try write("top.jpg")
        try write("b/deep.jpg")
        XCTAssertEqual(DirectoryScanner(root: root.path, recursive: false).map(\.filename), ["top.jpg"])
    }

    func testSymlinkedDirectoryCycleIsNotFollowed() throws {
        try write("b/one.jpg")
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("b/loop").path, withDestinationPath: root.path)
        XCTAssertEqual(DirectoryScanner(root: root.path).map(\.filename), ["one.jpg"])
    }

    func testScannedFileCarriesSizeAndModificationTime() throws {
        try write("a.jpg", [0xFF, 0xD8, 0xFF, 9, 9])
        let date = Date(timeIntervalSince1970: 1_700_000_000.5)
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: root.appendingPathComponent("a.jpg").path)
        let file = try XCTUnwrap(DirectoryScanner(root: root.path).first { _ in true })
        XCTAssertEqual(file.size, 5)
        XCTAssertEqual(file.modifiedAtMs, 1_700_000_000_500)
    }

    func testMissingRootIsReportedAsUnreadable() {
        var iterator = DirectoryScanner(root: root.path + "/missing").makeIterator()
        XCTAssertNil(iterator.next())
        XCTAssertEqual(iterator.unreadableDirectories, [root.path + "/missing"])
    }

    func testMagicBytesMustMatchTheExtension() throws {
        try write("real.jpg")
        try write("fake.jpg", Array("hello, not a photo".utf8))
        try write("real.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0])
        try write("real.heic", [0, 0, 0, 0x18] + Array("ftypheic".utf8) + [0, 0])
        try write("real.cr2", [0x49, 0x49, 0x2A, 0x00, 0x10, 0, 0, 0, 0x43, 0x52, 2, 0])
        try write("tiff.cr2", [0x49, 0x49, 0x2A, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0])
        try write("real.nef", [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8])
        try write("empty.png", [])
        var accepted: [String] = []
        for file in DirectoryScanner(root: root.path) {
            if (try? PhotoFileInspector.sampleHash(of: file)) != nil { accepted.append(file.filename) }
        }
        XCTAssertEqual(accepted, ["real.cr2", "real.heic", "real.jpg", "real.nef", "real.png"])
        let fake = try XCTUnwrap(DirectoryScanner.photoFile(atPath: root.appendingPathComponent("fake.jpg").path))
        XCTAssertThrowsError(try PhotoFileInspector.sampleHash(of: fake)) {
            XCTAssertEqual($0 as? PhotoInspectionError, .signatureMismatch(path: fake.path, expected: .jpeg))
        }
    }

    func testSampleHashChangesWithContentAndSize() throws {
        try write("a.jpg", [0xFF, 0xD8, 0xFF, 1])
        try write("b.jpg", [0xFF, 0xD8, 0xFF, 2])
        try write("c.jpg", [0xFF, 0xD8, 0xFF, 1])
        let hashes = try DirectoryScanner(root: root.path).map { try PhotoFileInspector.sampleHash(of: $0) }
        XCTAssertNotEqual(hashes[0], hashes[1])
        XCTAssertEqual(hashes[0], hashes[2])
    }

    func testXXHash64MatchesPublishedVectors() {
        XCTAssertEqual(XXHash64.hash([]), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(XXHash64.hash(Array("a".utf8)), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(XXHash64.hash(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(XXHash64.hash(Array("Nobody inspects the spammish repetition".utf8)), 0xFBCE_A83C_8A37_8BF1)
    }
}
