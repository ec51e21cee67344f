import Foundation
@testable import PhotoSorterCore
import XCTest

/// A photo's date taken: well-formed dates kept, malformed ones refused, a file time read on its zone's wall clock.
final class TakenDateTests: XCTestCase {
    func testWellFormedDatesAreKeptAndMalformedOnesRefused() throws {
        let date = try TakenDate(local: "2019-06-01T14:03:22", offset: "+02:00", source: .exif)
        XCTAssertEqual(date.iso8601, "2019-06-01T14:03:22+02:00")
        XCTAssertEqual(try TakenDate(local: "2019-06-01T14:03:22", offset: nil, source: .xmp).iso8601, "2019-06-01T14:03:22")
        for bad in ["2019-06-01 14:03:22", "2019-13-01T00:00:00", "2019-02-29T00:00:00", "2019-06-01T24:00:00", "2019-06-01T14:03",
                    "0000-00-00T00:00:00", "2019-06-01T14:03:22Z", ""] {
            XCTAssertThrowsError(try TakenDate(local: bad, offset: nil, source: .exif), bad)
        }
        XCTAssertNoThrow(try TakenDate(local: "2020-02-29T23:59:59", offset: "-09:30", source: .exif))
        for bad in ["+2:00", "02:00", "+02:60", "+15:00", "Z"] {
            XCTAssertThrowsError(try TakenDate(local: "2019-06-01T14:03:22", offset: bad, source: .exif), bad)
        }
    }

    func testFileTimeIsTheWallClockOfTheZoneWithItsOffset() {
        // 2019-06-01T12:00:00Z
        let ms: Int64 = 1_559_390_400_000
        let berlin = TakenDate.fileTime(modifiedAtMs: ms, timeZone: TimeZone(identifier: "Europe/Berlin")!)
        XCTAssertEqual(berlin.iso8601, "2019-06-01T14:00:00+02:00")
        XCTAssertEqual(berlin.source, .mtime)
        let newYork = TakenDate.fileTime(modifiedAtMs: ms + 999, timeZone: TimeZone(identifier: "America/New_York")!)
        XCTAssertEqual(newYork.iso8601, "2019-06-01T08:00:00-04:00")
    }

    func testDecodingRefusesAMalformedDate() {
        let json = Data(#"{"local": "2019-06-01T14:03:22", "offset": "+25:00", "source": "exif"}"#.utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(TakenDate.self, from: json))
    }
}
