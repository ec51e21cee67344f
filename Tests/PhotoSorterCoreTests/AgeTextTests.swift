import PhotoSorterCore
import XCTest

/// `prune --older-than` reads ages as people write them, and refuses anything else with a reason.
final class AgeTextTests: XCTestCase {
    func testReadsEachUnit() throws {
        XCTAssertEqual(try AgeText.seconds("45s"), 45)
        XCTAssertEqual(try AgeText.seconds("90m"), 5_400)
        XCTAssertEqual(try AgeText.seconds("12h"), 43_200)
        XCTAssertEqual(try AgeText.seconds("30d"), 2_592_000)
        XCTAssertEqual(try AgeText.seconds("2w"), 1_209_600)
        XCTAssertEqual(try AgeText.seconds("1.5d"), 129_600)
        XCTAssertEqual(try AgeText.seconds("0"), 0)
    }

    func testRefusesWhatIsNotAnAge() {
        for text in ["", "30", "d", "-1d", "soon", "3y", "nand"] {
            XCTAssertThrowsError(try AgeText.seconds(text), text) { error in
                XCTAssertTrue("\(error)".contains("not an age"), "\(error)")
            }
        }
    }
}
