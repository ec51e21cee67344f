@testable import PhotoSorterServer
import XCTest

/// The base of a concern's tests that run on both databases. The concern's class runs them on SQLite; its
/// `…OnPostgres` subclass, in the same file, runs the same tests on PostgreSQL by overriding `flavor`:
///
///     class PeopleCorrectionTests: DatabaseTestCase {               // on SQLite
///         func testCorrectionsSurviveReclusterAndReingest() async throws { try await TestService.run(flavor) { ... } }
///     }
///     final class PeopleCorrectionTestsOnPostgres: PeopleCorrectionTests {
///         override class var flavor: DatabaseFlavor { .postgres }
///         override func testCorrectionsSurviveReclusterAndReingest() async throws {
///             try await super.testCorrectionsSurviveReclusterAndReingest()
///         }
///     }
///
/// So `swift test --filter PeopleCorrectionTests` runs the concern on both databases, and `--filter OnPostgres` every
/// PostgreSQL test. Without `PHOTO_SORTER_TEST_POSTGRES_URL` the PostgreSQL tests skip (`TestService.start`).
///
/// The one overridden test in each `…OnPostgres` class is needed on Linux: SwiftPM's test discovery lists only the
/// classes that declare a test method themselves (and then adds the ones they inherit), so a subclass that declared
/// none would silently not run. Overriding the first test with a call to `super` keeps each test listed exactly
/// once per database.
///
/// Tests that prove something of one database only live in a plain `XCTestCase` named for it
/// (`SQLiteLockTests`, `ConnectionLossOnPostgresTests`, `SeveralInstancesOnPostgresTests`).
class DatabaseTestCase: XCTestCase {
    /// The database this class's tests run on.
    class var flavor: DatabaseFlavor { .sqlite }

    var flavor: DatabaseFlavor { Self.flavor }
}
