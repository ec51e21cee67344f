import Foundation
import PhotoSorterCore
import XCTest

final class ScannerTests: XCTestCase {
    private var root: URL!
    private var outside: URL!

    static let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]
    static let webp: [UInt8] = Array("RIFF".utf8) + [0x24, 0, 0, 0] + Array("WEBPVP8 ".utf8) + [0, 0, 0, 0]
    static let heic: [UInt8] = [0, 0, 0, 0x18] + Array("ftypheic".utf8) + [0, 0, 0, 0] + Array("mif1heic".utf8)
    static let avif: [UInt8] = [0, 0, 0, 0x1C] + Array("ftypavif".utf8) + [0, 0, 0, 0] + Array("avifmif1miaf".utf8)
    static let mp4: [UInt8] = [0, 0, 0, 0x20] + Array("ftypisom".utf8) + [0, 0, 2, 0] + Array("isomiso2avc1mp41".utf8)
    static let mov: [UInt8] = [0, 0, 0, 0x14] + Array("ftypqt  ".utf8) + [0, 0, 2, 0] + Array("qt  ".utf8)
    static let tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0]
    static let cr2: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 0x10, 0, 0, 0, 0x43, 0x52, 2, 0]
    static let gif: [UInt8] = Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0]
    static let bmp: [UInt8] = Array("BM".utf8) + [UInt8](repeating: 0, count: 24)

    override func setUpWithError() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("scanner-\(UUID().uuidString)")
        root = base.appendingPathComponent("root")
        outside = base.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("b/nested"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent(".thumbnails"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root.deletingLastPathComponent())
    }

    private func write(_ relative: String, _ bytes: [UInt8] = ScannerTests.jpeg) throws {
        try Data(bytes).write(to: root.appendingPathComponent(relative))
    }

    private func link(_ relative: String, to destination: String) throws {
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent(relative).path, withDestinationPath: destination)
    }

    /// Each entry of a scan, relative to the root, with what became of it: the photo's format or the reason.
    private func outcomes(_ scanner: DirectoryScanner) -> [(path: String, outcome: String)] {
        scanner.map { entry in
            let relative = String(entry.path.dropFirst(root.path.count + 1))
            switch entry {
            case .file(let file):
                do throws(NotQueuedReason) { return (relative, try PhotoFileInspector.inspect(file).format.rawValue) } catch { return (relative, error.description) }
            case .notQueued(let notQueued):
                return (relative, notQueued.reason.description)
            }
        }
    }

    private func outcomeMap(_ scanner: DirectoryScanner) -> [String: String] {
        Dictionary(outcomes(scanner), uniquingKeysWith: { first, _ in first })
    }

    func testScanListsEveryNonHiddenEntryInAnyCaseInStableDepthFirstOrder() throws {
        try write("z.JPG")
        try write("a.jpeg")
        try write("notes.txt", Array("not a photo\n".utf8))
        try write("b/photo.HeIc", Self.heic)
        try write("b/nested/raw.NEF", Self.tiff)
        try write("b/nested/raw.cr2", Self.cr2)
        try write("c.png", Self.png)
        try write(".hidden.jpg")
        try write(".thumbnails/hidden.jpg")
        let scanned = outcomes(DirectoryScanner(root: root.path))
        XCTAssertEqual(scanned.map(\.path), ["a.jpeg", "b/nested/raw.NEF", "b/nested/raw.cr2", "b/photo.HeIc", "c.png", "notes.txt", "z.JPG"])
        XCTAssertEqual(scanned.map(\.outcome), ["jpeg", "nef", "cr2", "heif", "png", "not a supported image (content is text)", "jpeg"])
    }

    func testContentDecidesTheFormatWhateverTheExtension() throws {
        try write("jpeg-named.png", Self.jpeg)
        try write("webp-named.jpg", Self.webp)
        try write("real.webp", Self.webp)
        try write("png-without-extension", Self.png)
        try write("animation.gif", Self.gif)
        try write("scan.bmp", Self.bmp)
        try write("scan.tif", Self.tiff)
        try write("tiff-named.cr2", Self.tiff)
        try write("cr2-named.tif", Self.cr2)
        try write("photo.avif", Self.avif)
        try write("heic-named.jpg", Self.heic)
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path)), [
            "jpeg-named.png": "jpeg", "webp-named.jpg": "webp", "real.webp": "webp", "png-without-extension": "png",
            "animation.gif": "gif", "scan.bmp": "bmp", "scan.tif": "tiff", "tiff-named.cr2": "tiff", "cr2-named.tif": "cr2",
            "photo.avif": "heif", "heic-named.jpg": "heif",
        ])
        let inspected = try DirectoryScanner(root: root.path).compactMap { entry -> InspectedPhoto? in
            guard case .file(let file) = entry else { return nil }
            return try PhotoFileInspector.inspect(file)
        }
        XCTAssertEqual(inspected.filter(\.extensionDisagrees).map(\.file.filename).sorted(),
                       ["cr2-named.tif", "heic-named.jpg", "jpeg-named.png", "png-without-extension", "tiff-named.cr2", "webp-named.jpg"])
    }

    func testDetectReadsEachSignatureAndKeepsNefOnlyWhenTheExtensionSaysSo() {
        XCTAssertEqual(PhotoFormat.detect(header: Self.jpeg), .jpeg)
        XCTAssertEqual(PhotoFormat.detect(header: Self.png), .png)
        XCTAssertEqual(PhotoFormat.detect(header: Self.webp), .webp)
        XCTAssertEqual(PhotoFormat.detect(header: Self.heic), .heif)
        XCTAssertEqual(PhotoFormat.detect(header: Self.avif), .heif)
        XCTAssertEqual(PhotoFormat.detect(header: Self.gif), .gif)
        XCTAssertEqual(PhotoFormat.detect(header: Self.bmp), .bmp)
        XCTAssertEqual(PhotoFormat.detect(header: Self.cr2), .cr2)
        XCTAssertEqual(PhotoFormat.detect(header: Self.tiff), .tiff)
        XCTAssertEqual(PhotoFormat.detect(header: Self.tiff, fileExtension: "NEF"), .nef)
        XCTAssertEqual(PhotoFormat.detect(header: [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8], fileExtension: "nef"), .nef)
        XCTAssertNil(PhotoFormat.detect(header: Self.mp4))
        XCTAssertNil(PhotoFormat.detect(header: Array("RIFF\u{0}\u{0}\u{0}\u{0}AVI LIST".utf8)))
        XCTAssertNil(PhotoFormat.detect(header: Array("hello".utf8), fileExtension: "jpg"))
        XCTAssertEqual(FileContent.identify(header: Self.mp4), .video)
        XCTAssertEqual(FileContent.identify(header: Self.mov), .video)
        XCTAssertEqual(FileContent.identify(header: [0x1A, 0x45, 0xDF, 0xA3, 0x9F]), .video)
        XCTAssertEqual(FileContent.identify(header: Array("Grüße, ünïcödé text\r\n\t".utf8)), .text)
        XCTAssertEqual(FileContent.identify(header: Array("é".utf8) + Array("a".utf8) + [0xC3]), .text, "a character cut by the sample is still text")
        XCTAssertEqual(FileContent.identify(header: [0x00, 0x01, 0x02, 0xFE]), .unrecognised)
        XCTAssertEqual(FileContent.identify(header: Array("%PDF-1.4\n%".utf8) + [0xE2, 0xE3, 0xCF, 0xD3]), .unrecognised)
    }

    func testEveryOddEntryGetsItsReason() throws {
        try write("photo.jpg")
        try write("empty.jpg", [])
        try write("notes.txt", Array("just some words\n".utf8))
        try write("fake.heic", Array("not really a HEIC\n".utf8))
        try write("fake.nef", [0x00, 0x13, 0x37, 0x99, 0xAB])
        try write("clip.mp4", Self.mp4)
        try write("clip-named.jpg", Self.mov)
        XCTAssertEqual(mkfifo(root.appendingPathComponent("pipe.jpg").path, 0o644), 0)
        try link("loop-a.jpg", to: root.appendingPathComponent("loop-b.jpg").path)
        try link("loop-b.jpg", to: root.appendingPathComponent("loop-a.jpg").path)
        try link("dangling.jpg", to: root.appendingPathComponent("gone.jpg").path)
        try link("inside.jpg", to: "photo.jpg")
        try link("folder-link", to: root.appendingPathComponent("b").path)
        try Data(Self.jpeg).write(to: outside.appendingPathComponent("secret.jpg"))
        try link("escape.jpg", to: outside.appendingPathComponent("secret.jpg").path)
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path, allowedRoots: [root.path])), [
            "photo.jpg": "jpeg",
            "inside.jpg": "jpeg",
            "empty.jpg": "empty file (0 bytes)",
            "notes.txt": "not a supported image (content is text)",
            "fake.heic": "extension says HEIF but the content is not an image (content is text)",
            "fake.nef": "extension says NEF but the content is not an image (unrecognised content)",
            "clip.mp4": "video, not analysed",
            "clip-named.jpg": "video, not analysed",
            "pipe.jpg": "not a regular file (FIFO)",
            "loop-a.jpg": "symlink loop",
            "loop-b.jpg": "symlink loop",
            "dangling.jpg": "broken symlink",
            "folder-link": "symlink to a directory (not followed)",
            "escape.jpg": "symlink target is outside the allowed roots",
        ])
        // A link whose target lies in another allowed root is followed, and so is any link when no roots are set.
        let allowed = outcomeMap(DirectoryScanner(root: root.path, allowedRoots: [root.path, outside.path]))
        XCTAssertEqual(allowed["escape.jpg"], "jpeg")
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path))["escape.jpg"], "jpeg")
    }

    func testNonUTF8NamesAreRefusedWithAReadableEscapedPathAndNotEntered() throws {
        let base = Array(root.path.utf8)
        for name: [UInt8] in [Array("caf".utf8) + [0xE9] + Array(".jpg".utf8), Array("dir".utf8) + [0xFF]] {
            let path = (base + [UInt8(ascii: "/")] + name + [0]).map { CChar(bitPattern: $0) }
            if name.last == 0xFF {
                XCTAssertEqual(mkdir(path, 0o755), 0)
                let child = (base + [UInt8(ascii: "/")] + name + Array("/inner.jpg".utf8) + [0]).map { CChar(bitPattern: $0) }
                let descriptor = open(child, O_CREAT | O_WRONLY, 0o644)
                XCTAssertGreaterThanOrEqual(descriptor, 0)
                close(descriptor)
            } else {
                let descriptor = open(path, O_CREAT | O_WRONLY, 0o644)
                XCTAssertGreaterThanOrEqual(descriptor, 0)
                _ = Self.jpeg.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                close(descriptor)
            }
        }
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path)), [
            "caf\\xE9.jpg": "file name is not valid UTF-8 (rename it)",
            "dir\\xFF": "file name is not valid UTF-8 (rename it)",
        ])
    }

    func testLongAndOddButValidNamesArePhotosThatOpen() throws {
        let long = String(repeating: "é", count: 125) + "x.jpg"  // 255 bytes
        XCTAssertEqual(long.utf8.count, 255)
        try write(long)
        try write("with spaces  and\nnewline.jpg")
        try write("émoji 📷.png", Self.png)
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path)), [long: "jpeg", "with spaces  and\nnewline.jpg": "jpeg", "émoji 📷.png": "png"])
    }

    func testNonRecursiveScanStaysInTheTopFolderAndSaysSo() throws {
        try write("top.jpg")
        try write("b/deep.jpg")
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path, recursive: false)),
                       ["top.jpg": "jpeg", "b": "folder not scanned (recursive is off)"])
    }

    func testSymlinkedDirectoryCycleIsNotFollowed() throws {
        try write("b/one.jpg")
        try link("b/loop", to: root.path)
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path)),
                       ["b/one.jpg": "jpeg", "b/loop": "symlink to a directory (not followed)"])
    }

    func testScannedFileCarriesSizeAndModificationTime() throws {
        try write("a.jpg", [0xFF, 0xD8, 0xFF, 9, 9])
        let date = Date(timeIntervalSince1970: 1_700_000_000.5)
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: root.appendingPathComponent("a.jpg").path)
        guard case .file(let file) = DirectoryScanner(root: root.path).first(where: { _ in true }) else { return XCTFail("no file") }
        XCTAssertEqual(file.size, 5)
        XCTAssertEqual(file.modifiedAtMs, 1_700_000_000_500)
    }

    /// A sidecar beside its photo (`a.jpg.xmp`, `b.xmp`, `b.XMP`) is not an entry of its own: the photo carries the
    /// size and time of each, so editing one changes the photo; a sidecar with no file beside it is skipped unopened.
    func testSidecarsGoWithTheirPhotoAndStampIt() throws {
        try write("a.jpg")
        try write("a.jpg.xmp", Array("<x/>".utf8))
        try write("b.png", ScannerTests.png)
        try write("b.xmp", Array("<x/>".utf8))
        try write("b.XMP", Array("<xx/>".utf8))
        try write("c.jpg")
        try write("lonely.xmp", Array("<x/>".utf8))
        func scan() -> [String: ScanEntry] {
            Dictionary(uniqueKeysWithValues: DirectoryScanner(root: root.path).map { (($0.path as NSString).lastPathComponent, $0) })
        }
        var entries = scan()
        XCTAssertEqual(Set(entries.keys), ["a.jpg", "b.png", "c.jpg", "lonely.xmp"])
        XCTAssertEqual(entries["lonely.xmp"], .notQueued(NotQueuedEntry(path: root.path + "/lonely.xmp", reason: .xmpSidecar)))
        func stamp(_ name: String) -> String? {
            if case .file(let file)? = entries[name] { return file.sidecarStamp }
            XCTFail("\(name) is not a file entry")
            return nil
        }
        XCTAssertNotNil(stamp("a.jpg"))
        XCTAssertEqual(stamp("b.png")?.split(separator: " ").count, 2, "both of b's sidecars stamp it")
        XCTAssertNil(stamp("c.jpg"))
        let single = DirectoryScanner.entry(atPath: root.path + "/b.png", allowedRoots: nil)
        XCTAssertEqual(single, entries["b.png"], "a single path is stamped like a scanned one")

        let before = stamp("b.png")
        try write("b.XMP", Array("<edited/>".utf8))
        entries = scan()
        XCTAssertNotEqual(stamp("b.png"), before)
        try FileManager.default.removeItem(at: root.appendingPathComponent("a.jpg.xmp"))
        entries = scan()
        XCTAssertNil(stamp("a.jpg"))
    }

    func testMissingRootIsOneNotQueuedEntry() {
        let entries = Array(DirectoryScanner(root: root.path + "/missing"))
        XCTAssertEqual(entries, [.notQueued(NotQueuedEntry(path: root.path + "/missing", reason: .unreadableDirectory(errno: ENOENT)))])
        XCTAssertEqual(NotQueuedReason.unreadableDirectory(errno: ENOENT).description, "unreadable directory: No such file or directory")
    }

    /// Root reads everything, so this runs as another user only (scripts/test.sh runs as whoever calls it).
    func testUnreadableFileAndFolderAreNamedWithTheSystemsReason() throws {
        try XCTSkipIf(geteuid() == 0, "root reads files whatever their permissions")
        try write("locked.jpg")
        try write("b/nested/inside.jpg")
        chmod(root.appendingPathComponent("locked.jpg").path, 0)
        chmod(root.appendingPathComponent("b/nested").path, 0)
        defer { chmod(root.appendingPathComponent("b/nested").path, 0o755) }
        XCTAssertEqual(outcomeMap(DirectoryScanner(root: root.path)),
                       ["locked.jpg": "cannot read: Permission denied", "b/nested": "unreadable directory: Permission denied"])
    }

    func testSinglePathEntryFollowsTheSameRules() throws {
        try write("a.jpg")
        try link("escape.jpg", to: "/etc/hostname")
        XCTAssertEqual(DirectoryScanner.entry(atPath: root.appendingPathComponent("b").path, allowedRoots: [root.path]),
                       .notQueued(NotQueuedEntry(path: root.appendingPathComponent("b").path, reason: .folder)))
        XCTAssertEqual(DirectoryScanner.entry(atPath: root.appendingPathComponent("escape.jpg").path, allowedRoots: [root.path]),
                       .notQueued(NotQueuedEntry(path: root.appendingPathComponent("escape.jpg").path, reason: .symlinkOutsideAllowedRoots)))
        guard case .file(let file) = DirectoryScanner.entry(atPath: root.appendingPathComponent("a.jpg").path, allowedRoots: [root.path]) else {
            return XCTFail("a.jpg is a file")
        }
        XCTAssertEqual(file.filename, "a.jpg")
    }

    func testSampleHashChangesWithContentAndSize() throws {
        try write("a.jpg", [0xFF, 0xD8, 0xFF, 1])
        try write("b.jpg", [0xFF, 0xD8, 0xFF, 2])
        try write("c.jpg", [0xFF, 0xD8, 0xFF, 1])
        try write("d.jpg", [0xFF, 0xD8, 0xFF, 1, 0])
        let hashes = try DirectoryScanner(root: root.path).map { entry -> String in
            guard case .file(let file) = entry else { throw XCTSkip("not a file") }
            return try PhotoFileInspector.inspect(file).sampleHash
        }
        XCTAssertNotEqual(hashes[0], hashes[1])
        XCTAssertEqual(hashes[0], hashes[2])
        XCTAssertNotEqual(hashes[0], hashes[3])
    }

    func testXXHash64MatchesPublishedVectors() {
        XCTAssertEqual(XXHash64.hash([]), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(XXHash64.hash(Array("a".utf8)), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(XXHash64.hash(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(XXHash64.hash(Array("Nobody inspects the spammish repetition".utf8)), 0xFBCE_A83C_8A37_8BF1)
    }
}
