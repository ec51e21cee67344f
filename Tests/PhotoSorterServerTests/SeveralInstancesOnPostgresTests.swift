import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import SQLKit
import Vapor
import XCTest

/// Several instances of the service on one PostgreSQL database (SQLite has one instance per file): they start
/// together on one schema, and each one's index follows the others' corrections and changed files.
final class SeveralInstancesOnPostgresTests: XCTestCase {
    /// Two instances starting at the same moment on an empty PostgreSQL database both come up on one schema (the
    /// one that loses the race to create a table waits and finds the other's migrations).
    func testInstancesStartingTogetherShareOneSchema() async throws {
        guard let url = ProcessInfo.processInfo.environment["PHOTO_SORTER_TEST_POSTGRES_URL"] else {
            throw XCTSkip("PHOTO_SORTER_TEST_POSTGRES_URL not set; scripts/test.sh starts a PostgreSQL server")
        }
        try await TestService.resetPostgres(url)
        let apps = try await withThrowingTaskGroup(of: Application.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    var config = ServiceConfig()
                    config.databaseURL = url
                    let app = try await Application.make(Environment(name: "testing", arguments: ["photo-sorter-tests", "serve"]))
                    app.logger.logLevel = .error
                    do {
                        try await configure(app, config: config, backgroundWork: false)
                    } catch {
                        try? await app.asyncShutdown()
                        throw error
                    }
                    return app
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for app in apps {
            let migrations = try await (app.db as! any SQLDatabase).raw("SELECT COUNT(*) AS n FROM _fluent_migrations").first()!
                .decode(column: "n", as: Int.self)
            XCTAssertEqual(migrations, schemaMigrations.count)
            try await app.asyncShutdown()
        }
    }

    /// Two instances on one PostgreSQL database: after a merge on one, the other's index reflects it at its next
    /// identity write (the generation changed), so it never matches a face to the absorbed person.
    func testOtherInstancesCatchUpWithCorrections() async throws {
        try await TestService.run(.postgres) { service in
            _ = try await service.waitUntilDone(try await service.ingest(URL.faces("face_recognition_examples")))
            try await withOtherInstance(of: service) { other in
                let people = try await service.request(.GET, "/persons?limit=100").decode(PersonPage.self).persons
                let (c, d) = try await service.twoPersonsNeverTogether(people.map(\.personID))
                let facesOfD = try await service.faces(of: d)
                let (before, generationBefore) = other.photoSorter.identity.state.withLockedValue { ($0.index, $0.generation) }
                XCTAssertEqual(before.faceCount(of: d), facesOfD.count)

                _ = try await service.request(.POST, "/persons/merge", json: MergeRequest(personIDs: [c, d], into: c)).decode(MergeResult.self)
                let anyFace = try await service.faces(of: c)[0]
                _ = try await other.photoSorter.people.confirm(face: anyFace.faceID)
                let after = other.photoSorter.identity.state.withLockedValue { $0.index }
                XCTAssertEqual(after.faceCount(of: d), 0, "the other instance still matches faces to the absorbed person")
                let facesOfC = try await service.faces(of: c)
                XCTAssertEqual(after.faceCount(of: c), facesOfC.count)
                let generationAfter = other.photoSorter.identity.state.withLockedValue { $0.generation }
                XCTAssertEqual(generationAfter, generationBefore, "a merge is replayed from the change log, not by reloading everything")
            }
        }
    }

    /// A changed file's faces leave every instance's index: the instance that re-ingested it logs the removals, and
    /// another instance on the same PostgreSQL drops them at its next catch-up (before, it kept them until restart).
    func testOtherInstancesForgetFacesOfAChangedFile() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("photo-sorter-changed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = folder.appendingPathComponent("photo.jpg")
        try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama.jpg"), to: target)
        try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama2.jpg"), to: folder.appendingPathComponent("other.jpg"))
        try await TestService.run(.postgres) { service in
            _ = try await service.waitUntilDone(try await service.ingest(folder))
            try await withOtherInstance(of: service) { other in
                let listed = try await service.request(.GET, "/persons").decode(PersonPage.self).persons
                let obama = try XCTUnwrap(listed.first).personID
                XCTAssertEqual(other.photoSorter.identity.state.withLockedValue { $0.index.faceCount(of: obama) }, 2)

                // Another picture at the same path (Biden, a different size and content): Obama's face there is gone.
                try FileManager.default.removeItem(at: target)
                try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/biden/biden.jpg"), to: target)
                _ = try await service.waitUntilDone(try await service.ingest(folder))
                let obamaNow = try await service.request(.GET, "/person/\(obama)").decode(PersonView.self)
                XCTAssertEqual(obamaNow.faceCount, 1)

                try await other.photoSorter.identity.catchUpNow()
                let (index, generation) = other.photoSorter.identity.state.withLockedValue { ($0.index, $0.generation) }
                XCTAssertEqual(index.faceCount(of: obama), 1, "the other instance still holds the removed face")
                XCTAssertEqual(generation, service.services.identity.state.withLockedValue { $0.generation })
            }
        }
    }

    // MARK: Helpers

    /// Runs `body` with a second instance (no background work) on the PostgreSQL database of `service`, and shuts it
    /// down afterwards whatever happens.
    private func withOtherInstance(of service: TestService, _ body: (Application) async throws -> Void) async throws {
        var config = service.config
        config.port = service.config.port + 1
        let other = try await Application.make(Environment(name: "testing", arguments: ["photo-sorter-tests", "serve"]))
        other.logger.logLevel = .warning
        do {
            try await configure(other, config: config, backgroundWork: false)
            try await body(other)
        } catch {
            try? await other.asyncShutdown()
            throw error
        }
        try await other.asyncShutdown()
    }
}
