import Foundation
import PhotoSorterCore
import PhotoSorterTestSupport
import XCTest

/// File-type sniffing against `Tests/Fixtures/file-kinds.json`, the heads of every kind of file the service or the ML
/// service knows, with what `FileContent.identify` (what the scanner runs on a file's first bytes) answers. The ML
/// service's `decode.sniff` is tested against the same file (ml-service/tests/test_file_kinds.py), so the two sides
/// cannot drift apart unnoticed; where they answer differently on purpose, a case carries `ml_service` (what the ML
/// service says, not read here) and a note saying why.
///
/// The fixture speaks the service's words: `format` is a `PhotoFormat` raw value, or null when the content is not
/// an image; `content` is `image`, `video`, `text` or `unrecognised` (the cases of `FileContent`); `extension` is
/// the file's extension without the dot, which decides only between TIFF and NEF.
final class FileKindsTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let headBase64: String
        let `extension`: String
        let format: String?
        let content: String

        enum CodingKeys: String, CodingKey {
            case name, format, content
            case headBase64 = "head_base64"
            case `extension`
        }
    }

    static let cases: [Case] = {
        let url = EmbeddingFixture.repositoryRoot.appendingPathComponent("Tests/Fixtures/file-kinds.json")
        return try! JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
    }()

    func testEachHeadIsIdentifiedAsTheFixtureSays() throws {
        XCTAssertFalse(Self.cases.isEmpty)
        for kind in Self.cases {
            let head = try XCTUnwrap(Data(base64Encoded: kind.headBase64), kind.name)
            XCTAssertLessThanOrEqual(head.count, FileContent.headerLength, "\(kind.name): the scanner reads only this many bytes")
            XCTAssertEqual(kind.format == nil, kind.content != "image", "\(kind.name): a format exactly when the content is an image")
            let expected: FileContent
            switch kind.content {
            case "image": expected = .image(try XCTUnwrap(kind.format.flatMap(PhotoFormat.init(rawValue:)), "\(kind.name): format \(kind.format ?? "null")"))
            case "video": expected = .video
            case "text": expected = .text
            case "unrecognised": expected = .unrecognised
            default: XCTFail("\(kind.name): unknown content \(kind.content)"); continue
            }
            XCTAssertEqual(FileContent.identify(header: Array(head), fileExtension: kind.extension), expected, kind.name)
            XCTAssertEqual(PhotoFormat.detect(header: Array(head), fileExtension: kind.extension)?.rawValue, kind.format, kind.name)
        }
    }

    /// Every format the service analyses and every other answer of `identify` has a case.
    func testTheFixtureCoversEveryFormatAndEveryKindOfContent() {
        XCTAssertEqual(Set(Self.cases.compactMap(\.format)), Set(PhotoFormat.allCases.map(\.rawValue)))
        XCTAssertEqual(Set(Self.cases.map(\.content)), ["image", "video", "text", "unrecognised"])
    }
}
