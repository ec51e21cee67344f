import Foundation
import PhotoSorterCore
@testable import PhotoSorterServer
import PhotoSorterTestSupport
import XCTest

/// Watch mode, on real folders with real inotify and the real service: what is copied, written, created, flooded or
/// deleted in a watched folder reaches the library within seconds, and a file is never analysed half-written.
class WatchTests: DatabaseTestCase {
    private static let settleSeconds = 0.5

    /// A photo copied into a watched folder is ingested and PROCESSED, analysed once; GET /watch shows the watcher.
    func testAPhotoCopiedIntoAWatchedFolderIsProcessed() async throws {
        try await Self.watching { service, folder in
            let copy = folder.appendingPathComponent("obama.jpg")
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama.jpg"), to: copy)
            let photo = try await Self.waitForPhoto(service, at: copy.path) { $0.status == .processed }
            XCTAssertEqual(service.ml.requestedPhotoIDs, [photo.photoID])
            XCTAssertEqual(photo.personIDs.count, 1)
            let status = try await Self.watchStatus(service)
            XCTAssertTrue(status.active)
            XCTAssertEqual(status.roots, [WatchStatus.Root(path: folder.path, available: true)])
            XCTAssertGreaterThan(status.eventsSeen, 0)
            XCTAssertEqual(status.lastReconciliation?.reason, "start")
            XCTAssertGreaterThanOrEqual(status.scansStarted, 2, "the start reconciliation and the copy's folder")
        }
    }

    /// A file written in chunks with pauses shorter than the settle time (one writer holding it open) is not taken
    /// while it grows: no photo row exists until it is complete, and the ML service sees it once, whole (the fake
    /// analyses only the fixture's exact bytes; a partial JPEG would fail).
    func testAFileWrittenSlowlyIsAnalysedOnlyWhenComplete() async throws {
        try await Self.watching(settleSeconds: 1.0) { service, folder in
            let bytes = try Data(contentsOf: URL.faces("face_recognition_examples/biden/biden.jpg"))
            let target = folder.appendingPathComponent("biden.jpg")
            FileManager.default.createFile(atPath: target.path, contents: nil)
            let handle = try FileHandle(forWritingTo: target)
            let chunks = 6
            let chunkSize = (bytes.count + chunks - 1) / chunks
            for index in 0..<chunks {
                try handle.write(contentsOf: bytes[(index * chunkSize)..<min(bytes.count, (index + 1) * chunkSize)])
                try await Task.sleep(for: .milliseconds(600))
                let early = try await service.photos().filter { $0.path == target.path }
                XCTAssertEqual(early, [], "taken after chunk \(index + 1) of \(chunks)")
            }
            try handle.close()
            let photo = try await Self.waitForPhoto(service, at: target.path) { $0.status == .processed }
            XCTAssertEqual(service.ml.requestedPhotoIDs, [photo.photoID], "the ML service saw the file exactly once")
            let expectedFaces = try XCTUnwrap(EmbeddingFixture.shared.photo("face_recognition_examples/biden/biden.jpg")).faces.count
            XCTAssertEqual(photo.detections?.count, expectedFaces, "analysed complete")
        }
    }

    /// A sub-folder created in the watched tree, and a folder of photos moved in from outside, are followed: their
    /// photos are taken, and so is a photo copied into them later.
    func testNewSubfoldersAreFollowed() async throws {
        let outside = try Self.makeFolder("outside")
        defer { try? FileManager.default.removeItem(at: outside) }
        try await Self.watching { service, folder in
            let deep = folder.appendingPathComponent("2024/june")
            try FileManager.default.createDirectory(at: deep, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama2.jpg"),
                                             to: deep.appendingPathComponent("obama2.jpg"))
            let trip = outside.appendingPathComponent("trip")
            try FileManager.default.createDirectory(at: trip, withIntermediateDirectories: true)
            for name in ["kit_harington/john1.jpeg", "rose_leslie/img2.jpg"] {
                try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/" + name),
                                                 to: trip.appendingPathComponent(URL(fileURLWithPath: name).lastPathComponent))
            }
            let movedIn = folder.appendingPathComponent("trip")
            try FileManager.default.moveItem(at: trip, to: movedIn)
            for path in [deep.appendingPathComponent("obama2.jpg"), movedIn.appendingPathComponent("john1.jpeg"),
                         movedIn.appendingPathComponent("img2.jpg")] {
                _ = try await Self.waitForPhoto(service, at: path.path) { $0.status == .processed }
            }
            let later = movedIn.appendingPathComponent("later/obama3.jpg")
            try FileManager.default.createDirectory(at: later.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama3.jpg"), to: later)
            _ = try await Self.waitForPhoto(service, at: later.path) { $0.status == .processed }
            XCTAssertEqual(Set(service.ml.requestedPhotoIDs).count, 4)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 4, "no photo analysed twice")
            let status = try await Self.watchStatus(service)
            XCTAssertGreaterThanOrEqual(status.watches, 5, "the root, 2024, 2024/june, trip, trip/later")
        }
    }

    /// More events than the kernel queues (`/proc/sys/fs/inotify/max_queued_events`) while the service cannot read:
    /// the queue overflows, and the reconciliation that follows at once finds every photo — including one in a folder
    /// whose creation was among the lost events, which is watched from then on.
    func testAnOverflowIsFollowedByAReconciliationThatFindsEverything() async throws {
        let maxQueued = Int(try String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 16384
        try await Self.watching { service, folder in
            let photos = ["obama/obama.jpg", "biden/biden.jpg", "alex_lacamoire/img1.jpg"].map { URL.faces("face_recognition_examples/" + $0) }
            // A child process stops this one (every thread of the service), floods the watched folder with twice the
            // queue's room in events (each empty file: a creation and a close), makes a folder and copies the photos
            // (their events are lost), and lets this process go on. It always sends SIGCONT, whatever happens.
            let flood = Process()
            flood.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            flood.arguments = ["python3", "-c", """
                import os, shutil, signal, sys
                pid, folder, count, photos = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
                os.kill(pid, signal.SIGSTOP)
                try:
                    for i in range(count):
                        open(os.path.join(folder, 'n%06d.txt' % i), 'w').close()
                    os.mkdir(os.path.join(folder, 'late'))
                    for i, photo in enumerate(photos):
                        shutil.copyfile(photo, os.path.join(folder, 'late' if i == 0 else '', os.path.basename(photo)))
                finally:
                    os.kill(pid, signal.SIGCONT)
                """, "\(getpid())", folder.path, "\(maxQueued)"] + photos.map(\.path)
            try flood.run()
            flood.waitUntilExit()
            XCTAssertEqual(flood.terminationStatus, 0)
            let expected = [folder.appendingPathComponent("late/obama.jpg"), folder.appendingPathComponent("biden.jpg"),
                            folder.appendingPathComponent("img1.jpg")]
            // Generous waits: the reconciliation reads every flood file, and CI machines are slow and busy.
            for path in expected { _ = try await Self.waitForPhoto(service, at: path.path, timeout: 180) { $0.status == .processed } }
            let status = try await Self.watchStatus(service)
            XCTAssertGreaterThanOrEqual(status.overflows, 1)
            XCTAssertEqual(status.lastReconciliation?.reason, "queue overflow")
            // The folder made while events were lost is watched now: a photo copied there later is taken by its events
            // (its scan may wait behind the root's: the flood's files settle and are scanned too).
            let later = folder.appendingPathComponent("late/obama2.jpg")
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama2.jpg"), to: later)
            _ = try await Self.waitForPhoto(service, at: later.path, timeout: 180) { $0.status == .processed }
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 4, "each photo analysed once")
        }
    }

    /// A folder renamed inside the watched tree, and a file moved to another folder, keep their photos: same ids,
    /// no analysis again, counted as moved (the new folder is scanned before the old one is swept).
    func testMovesInsideTheTreeKeepTheirPhotos() async throws {
        try await Self.watching { service, folder in
            let album = folder.appendingPathComponent("album"), other = folder.appendingPathComponent("other")
            try FileManager.default.createDirectory(at: album, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/biden/biden.jpg"), to: other.appendingPathComponent("biden.jpg"))
            for name in ["obama.jpg", "obama2.jpg"] {
                try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/" + name), to: album.appendingPathComponent(name))
            }
            var ids: [String: Int64] = [:]
            for name in ["obama.jpg", "obama2.jpg"] {
                ids[name] = try await Self.waitForPhoto(service, at: album.appendingPathComponent(name).path) { $0.status == .processed }.photoID
            }
            _ = try await Self.waitForPhoto(service, at: other.appendingPathComponent("biden.jpg").path) { $0.status == .processed }
            let renamed = folder.appendingPathComponent("2024 album")
            try FileManager.default.moveItem(at: album, to: renamed)
            try FileManager.default.moveItem(at: renamed.appendingPathComponent("obama2.jpg"), to: other.appendingPathComponent("obama2.jpg"))
            let first = try await Self.waitForPhoto(service, at: renamed.appendingPathComponent("obama.jpg").path) { $0.status == .processed }
            let second = try await Self.waitForPhoto(service, at: other.appendingPathComponent("obama2.jpg").path) { $0.status == .processed }
            XCTAssertEqual(first.photoID, ids["obama.jpg"])
            XCTAssertEqual(second.photoID, ids["obama2.jpg"])
            let status = try await Self.waitFor("both moves counted") {
                let status = try await Self.watchStatus(service)
                return status.moved == 2 && status.foldersWaiting == 0 ? status : nil
            }
            XCTAssertEqual(status.missing, 0, "a move is not a disappearance")
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 3, "nothing analysed again")
        }
    }

    /// A deleted file's photo becomes MISSING (kept, hidden), and the watcher counts it. (Another photo stays: a root
    /// whose every file vanished at once reads as an unplugged drive, not as deletions.)
    func testADeletedFileBecomesMissing() async throws {
        try await Self.watching { service, folder in
            let kept = folder.appendingPathComponent("biden.jpg"), deleted = folder.appendingPathComponent("obama.jpg")
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/biden/biden.jpg"), to: kept)
            try FileManager.default.copyItem(at: URL.faces("face_recognition_examples/obama/obama.jpg"), to: deleted)
            _ = try await Self.waitForPhoto(service, at: kept.path) { $0.status == .processed }
            let photo = try await Self.waitForPhoto(service, at: deleted.path) { $0.status == .processed }
            try FileManager.default.removeItem(at: deleted)
            let gone = try await Self.waitFor("photo \(photo.photoID) MISSING") {
                let now = try await service.photo(photo.photoID)
                return now.status == .missing ? now : nil
            }
            XCTAssertNotNil(gone.missingSince)
            let status = try await Self.waitFor("the watcher to count it") {
                let status = try await Self.watchStatus(service)
                return status.missing == 1 ? status : nil
            }
            XCTAssertEqual(status.moved + status.restored + status.copies, 0)
            XCTAssertEqual(service.ml.requestedPhotoIDs.count, 2, "nothing analysed again")
        }
    }

    /// Ten thousand file events (small files created and deleted) leave nothing behind in the watcher: nothing
    /// settling, no folder waiting, no watch more than the folders.
    func testManyFileEventsLeaveNothingBehind() async throws {
        try await Self.watching { service, folder in
            let noise = folder.appendingPathComponent("noise")
            try FileManager.default.createDirectory(at: noise, withIntermediateDirectories: true)
            for round in 0..<10 {
                let names = (0..<500).map { noise.appendingPathComponent("r\(round)-\($0).txt").path }
                for name in names { FileManager.default.createFile(atPath: name, contents: Data("x".utf8)) }
                for name in names { try FileManager.default.removeItem(atPath: name) }
            }
            let status = try await Self.waitFor("the watcher idle") {
                let status = try await Self.watchStatus(service)
                return status.pending == 0 && status.foldersWaiting == 0 && status.eventsSeen >= 10_000 ? status : nil
            }
            XCTAssertEqual(status.watches, 2, "the root and noise/")
            XCTAssertEqual(status.overflows, 0)
        }
    }

    func testWithoutWatchRootsNoWatcherRuns() async throws {
        try await TestService.run(flavor) { service in
            let status = try await Self.watchStatus(service)
            XCTAssertFalse(status.active)
            XCTAssertEqual(status.roots, [])
            XCTAssertNil(status.lastReconciliation)
        }
    }

    // MARK: Helpers

    /// A service watching a new empty folder (canonical path), once its start reconciliation ran.
    private static func watching(settleSeconds: Double = settleSeconds,
                                 _ body: (TestService, URL) async throws -> Void) async throws {
        let folder = try makeFolder("watched")
        defer { try? FileManager.default.removeItem(at: folder) }
        try await TestService.run(flavor, tune: { config in
            config.watchRoots = [folder.path]
            config.watchSettleSeconds = settleSeconds
        }) { service in
            _ = try await waitFor("the watcher's start reconciliation") {
                try await watchStatus(service).lastReconciliation
            }
            try await body(service, folder)
        }
    }

    private static func makeFolder(_ name: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder.resolvingSymlinksInPath()
    }

    private static func watchStatus(_ service: TestService) async throws -> WatchStatus {
        try await service.request(.GET, "/watch").decode(WatchStatus.self)
    }

    private static func waitForPhoto(_ service: TestService, at path: String, timeout: Double = 20,
                                     _ condition: @escaping (PhotoView) -> Bool) async throws -> PhotoView {
        try await waitFor("\(path) in the library", timeout: timeout) {
            guard let photo = try await service.photo(path: path) else { return nil }
            return condition(photo) ? photo : nil
        }
    }

    /// Polls `probe` until it answers; fails the test with `what` after `timeout` seconds.
    private static func waitFor<T>(_ what: String, timeout: Double = 20, _ probe: () async throws -> T?) async throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(100))
        }
        if let value = try await probe() { return value }
        throw TestService.UnexpectedReply(description: "timed out after \(timeout) s waiting for \(what)")
    }
}

final class WatchTestsOnPostgres: WatchTests {
    override class var flavor: DatabaseFlavor { .postgres }
    override func testAPhotoCopiedIntoAWatchedFolderIsProcessed() async throws {
        try await super.testAPhotoCopiedIntoAWatchedFolderIsProcessed()
    }
}

/// Watch mode's settings: roots colon-separated from the environment (or the config file), times validated.
final class WatchConfigTests: XCTestCase {
    func testWatchSettingsComeFromTheEnvironmentAndAreValidated() throws {
        let defaults = try ServiceConfig.load(environment: [:])
        XCTAssertEqual(defaults.watchRoots, [])
        XCTAssertEqual(defaults.watchSettleSeconds, 2)
        XCTAssertEqual(defaults.watchReconcileSeconds, 3600)
        let config = try ServiceConfig.load(environment: [
            "PHOTO_SORTER_WATCH_ROOTS": "/photos/family: /media/usb/photos",
            "PHOTO_SORTER_WATCH_SETTLE_SECONDS": "0.5", "PHOTO_SORTER_WATCH_RECONCILE_SECONDS": "600",
        ])
        XCTAssertEqual(config.watchRoots, ["/photos/family", "/media/usb/photos"])
        XCTAssertEqual(config.watchSettleSeconds, 0.5)
        XCTAssertEqual(config.watchReconcileSeconds, 600)
        for (name, value) in [("PHOTO_SORTER_WATCH_SETTLE_SECONDS", "0"), ("PHOTO_SORTER_WATCH_RECONCILE_SECONDS", "-1"),
                              ("PHOTO_SORTER_WATCH_SETTLE_SECONDS", "soon")] {
            XCTAssertThrowsError(try ServiceConfig.load(environment: [name: value])) {
                XCTAssertTrue("\($0)".contains("PHOTO_SORTER_WATCH_"), "\($0)")
            }
        }
    }
}
