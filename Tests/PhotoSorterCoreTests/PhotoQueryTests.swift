import Foundation
@testable import PhotoSorterCore
import XCTest

final class PhotoQueryTests: XCTestCase {
    func testCalendarDaysMustExist() {
        XCTAssertEqual(CalendarDay("2019-12-31")?.description, "2019-12-31")
        XCTAssertNotNil(CalendarDay("2020-02-29"))
        for bad in ["2019-02-29", "2019-1-01", "2019-13-01", "2019-00-10", "19-01-01", "2019-01-32", "2019/01/01", "+019-01-01"] {
            XCTAssertNil(CalendarDay(bad), bad)
        }
    }

    func testDateRangeIncludesBothDays() {
        let query = PhotoQuery(from: CalendarDay("2019-01-01"), to: CalendarDay("2019-12-31"))
        XCTAssertEqual(query.takenBounds.lower, "2019-01-01T00:00:00")
        XCTAssertEqual(query.takenBounds.upper, "2019-12-31T23:59:59")
    }

    func testCursorsRoundTripAndRejectGarbage() {
        for text in ["0", "123", "2019-06-01T14:03:22,123"] { XCTAssertEqual(PhotoCursor(text)?.description, text) }
        for bad in ["", "x", "-1", "2019-06-01,1", "2019-06-01T14:03:22,", "a,b,c"] { XCTAssertNil(PhotoCursor(bad), bad) }
    }

    func testValidationNamesWhatIsWrong() {
        XCTAssertThrowsError(try PhotoQuery(persons: [1, 1]).validate())
        XCTAssertThrowsError(try PhotoQuery(limit: 0).validate())
        XCTAssertThrowsError(try PhotoQuery(from: CalendarDay("2020-01-01"), to: CalendarDay("2019-01-01")).validate())
        XCTAssertThrowsError(try PhotoQuery(order: .taken, after: PhotoCursor(taken: nil, id: 3)).validate())
        XCTAssertThrowsError(try PhotoQuery(order: .id, after: PhotoCursor(taken: "2019-06-01T14:03:22", id: 3)).validate())
        XCTAssertNoThrow(try PhotoQuery(persons: [1, 2], order: .takenDesc, after: PhotoCursor(taken: "2019-06-01T14:03:22", id: 3)).validate())
    }

    /// The union of per-person first pages is exactly the first page of the union, in every order.
    func testUnionOfFirstPagesIsTheFirstPageOfTheUnion() {
        var generator = SystemRandomNumberGenerator()
        for order in PhotoQuery.Order.allCases {
            let query = PhotoQuery(order: order)
            for _ in 0..<200 {
                let photos = (1...40).map { PhotoKey(id: Int64($0), taken: "2019-0\(Int.random(in: 1...3, using: &generator))-01T00:00:00") }
                let lists = (0..<3).map { _ in photos.filter { _ in Bool.random(using: &generator) }.sorted { query.precedes($0, $1) } }
                let count = Int.random(in: 1...10, using: &generator)
                var seen = Set<Int64>()
                let truth = lists.joined().sorted { query.precedes($0, $1) }.filter { seen.insert($0.id).inserted }.prefix(count)
                XCTAssertEqual(query.union(of: lists.map { Array($0.prefix(count)) }, count: count), Array(truth))
            }
        }
    }
}
