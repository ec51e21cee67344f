import Foundation
@testable import PhotoSorterCore
import XCTest

/// The watch mode's debounce: a file is taken only once it has been stable for the settle time, bursts become one
/// scan, and nothing that settled or was scanned stays behind.
final class SettleTrackerTests: XCTestCase {
    /// A clock the test moves and a file system of sizes and times the test writes.
    private final class World: @unchecked Sendable {
        private let lock = NSLock()
        private var time = 0.0
        private var files: [String: SettleTracker.FileState] = [:]

        func tracker(settle: Double = 2) -> SettleTracker {
            SettleTracker(settleSeconds: settle, clock: { self.lock.withLock { self.time } },
                          stat: { path in self.lock.withLock { self.files[path] } })
        }

        func advance(_ seconds: Double) { lock.withLock { time += seconds } }

        func write(_ path: String, size: Int64) {
            lock.withLock { files[path] = .init(size: size, modifiedAtNs: Int64(time * 1e9)) }
        }

        func delete(_ path: String) { _ = lock.withLock { files.removeValue(forKey: path) } }
    }

    private func scan(_ folder: String, recursive: Bool = false) -> SettleTracker.FolderScan {
        .init(folder: folder, recursive: recursive)
    }

    func testAFileIsTakenOnlyAfterItsSizeAndTimeWereStableForTheSettleTime() {
        let world = World()
        var tracker = world.tracker()
        world.write("/w/a.jpg", size: 100)
        tracker.fileChanged("/w/a.jpg")
        world.advance(1.9)
        XCTAssertEqual(tracker.dueScans(), [])
        XCTAssertEqual(tracker.unsettled(in: "/w", recursive: false), ["/w/a.jpg"])
        world.advance(0.2)
        XCTAssertEqual(tracker.dueScans(), [scan("/w")])
        XCTAssertEqual(tracker.settlingCount, 0)
        XCTAssertEqual(tracker.dueScans(), [], "a settled file is forgotten")
    }

    /// A copy that writes a chunk, pauses (shorter than the settle time) and writes again, without events in between
    /// (as a writer that never closes): each size change starts the wait again, so it is taken only when complete.
    func testACopyInProgressIsNeverTakenHalfWritten() {
        let world = World()
        var tracker = world.tracker()
        world.write("/w/slow.jpg", size: 0)
        tracker.fileChanged("/w/slow.jpg")
        for chunk in 1...8 {
            world.advance(1.5)
            world.write("/w/slow.jpg", size: Int64(chunk) * 1000)
            world.advance(0.25)
            XCTAssertEqual(tracker.dueScans(), [], "chunk \(chunk) is not the whole file")
        }
        world.advance(1.9)
        XCTAssertEqual(tracker.dueScans(), [])
        world.advance(0.2)
        XCTAssertEqual(tracker.dueScans(), [scan("/w")])
    }

    /// A stat that did not change is not enough while events keep coming (a writer rewriting the same bytes).
    func testANewEventStartsTheWaitAgain() {
        let world = World()
        var tracker = world.tracker()
        world.write("/w/a.jpg", size: 100)
        tracker.fileChanged("/w/a.jpg")
        world.advance(1.5)
        tracker.fileChanged("/w/a.jpg")
        world.advance(1.5)
        XCTAssertEqual(tracker.dueScans(), [])
        world.advance(0.6)
        XCTAssertEqual(tracker.dueScans(), [scan("/w")])
    }

    func testAFileDeletedWhileSettlingIsDroppedAndItsFolderSwept() {
        let world = World()
        var tracker = world.tracker()
        world.write("/w/tmp.part", size: 10)
        tracker.fileChanged("/w/tmp.part")
        world.delete("/w/tmp.part")
        tracker.fileRemoved("/w/tmp.part")
        XCTAssertEqual(tracker.settlingCount, 0)
        world.advance(2)
        XCTAssertEqual(tracker.dueScans(), [scan("/w")])
    }

    /// A thousand deletions in one folder are one scan, once the folder has been quiet for the settle time.
    func testABurstOfDeletionsIsOneScanOnceQuiet() {
        let world = World()
        var tracker = world.tracker()
        for index in 0..<1000 {
            tracker.fileRemoved("/w/old/\(index).jpg")
            if index % 100 == 0 { world.advance(0.5) }
        }
        XCTAssertEqual(tracker.dueScans(), [])
        world.advance(2)
        XCTAssertEqual(tracker.dueScans(), [scan("/w/old")])
        XCTAssertEqual(tracker.waitingFolderCount, 0)
    }

    /// A folder that appeared is scanned recursively, with the files below it that still settle left out; the folders
    /// inside it are covered by that one scan.
    func testANewFolderIsScannedRecursivelyWithoutItsUnsettledFiles() {
        let world = World()
        var tracker = world.tracker()
        tracker.folderAppeared("/w/2024")
        world.write("/w/2024/june/a.jpg", size: 5)
        tracker.folderAppeared("/w/2024/june")
        tracker.fileChanged("/w/2024/june/a.jpg")
        world.advance(2)
        world.write("/w/2024/june/a.jpg", size: 6)
        XCTAssertEqual(tracker.dueScans(), [scan("/w/2024", recursive: true)])
        XCTAssertEqual(tracker.unsettled(in: "/w/2024", recursive: true), ["/w/2024/june/a.jpg"])
        XCTAssertEqual(tracker.unsettled(in: "/w/2024", recursive: false), [])
        world.advance(2)
        XCTAssertEqual(tracker.dueScans(), [scan("/w/2024/june")])
    }

    /// A file moved from one folder to another: the new folder is scanned before the old one is swept, so the photo
    /// is found at its new path while its old one is still known (a move, not a disappearance).
    func testAMoveScansTheNewFolderBeforeSweepingTheOldOne() {
        let world = World()
        var tracker = world.tracker()
        world.delete("/w/a/x.jpg")
        tracker.fileRemoved("/w/a/x.jpg")
        world.advance(0.5)
        world.write("/w/b/x.jpg", size: 9)
        tracker.fileChanged("/w/b/x.jpg")
        world.advance(1.6)
        XCTAssertEqual(tracker.dueScans(), [], "the sweep of /w/a waits for the file settling in /w/b")
        world.advance(0.5)
        XCTAssertEqual(tracker.dueScans(), [scan("/w/b"), scan("/w/a")])
    }

    /// A removal does not wait for ever behind files that never settle (a log written all the time).
    func testASweepWaitsForSettlingFilesOnlyForAWhile() {
        let world = World()
        var tracker = world.tracker(settle: 1)
        tracker.fileRemoved("/w/a/gone.jpg")
        var size: Int64 = 0
        var due: [SettleTracker.FolderScan] = []
        for _ in 0..<40 {
            size += 1
            world.write("/w/log.txt", size: size)
            tracker.fileChanged("/w/log.txt")
            world.advance(0.5)
            due += tracker.dueScans()
        }
        XCTAssertEqual(due, [scan("/w/a")])
    }

    func testAVanishedFolderIsScannedAtItsGonePathAndForgetsItsSettlingFiles() {
        let world = World()
        var tracker = world.tracker()
        world.write("/w/trip/a.jpg", size: 1)
        tracker.fileChanged("/w/trip/a.jpg")
        tracker.folderVanished("/w/trip")
        XCTAssertEqual(tracker.settlingCount, 0)
        world.advance(2)
        XCTAssertEqual(tracker.dueScans(), [scan("/w/trip", recursive: true)])
    }

    /// Memory stays flat: ten thousand files created, settled and deleted leave nothing behind.
    func testNothingStaysBehindAfterManyEvents() {
        let world = World()
        var tracker = world.tracker(settle: 1)
        for index in 0..<10_000 {
            let path = "/w/\(index % 7)/f\(index).txt"
            world.write(path, size: 1)
            tracker.fileChanged(path)
            if index % 3 == 0 {
                world.delete(path)
                tracker.fileRemoved(path)
            }
            if index % 500 == 0 {
                world.advance(0.3)
                _ = tracker.dueScans()
            }
        }
        world.advance(20)
        XCTAssertFalse(tracker.dueScans().isEmpty)
        XCTAssertEqual(tracker.settlingCount, 0)
        XCTAssertEqual(tracker.waitingFolderCount, 0)
    }

    func testParentFolder() {
        XCTAssertEqual(SettleTracker.parent(of: "/w/a.jpg"), "/w")
        XCTAssertEqual(SettleTracker.parent(of: "/a.jpg"), "/")
        XCTAssertTrue(SettleTracker.isInside("/w/a/b", "/w"))
        XCTAssertFalse(SettleTracker.isInside("/wx/a", "/w"))
        XCTAssertFalse(SettleTracker.isInside("/w", "/w"))
    }
}
