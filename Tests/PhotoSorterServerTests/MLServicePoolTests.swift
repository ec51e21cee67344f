import NIOConcurrencyHelpers
@testable import PhotoSorterServer
import XCTest

/// How requests are spread over several ML services.
final class MLServicePoolTests: XCTestCase {
    private let clock = NIOLockedValueBox(1000.0)

    private func pool(_ urls: [String]) -> MLServicePool {
        MLServicePool(baseURLs: urls, now: { [clock] in clock.withLockedValue { $0 } })
    }

    func testTheServiceWithTheShortestReportedQueueGetsTheNextPhoto() {
        let pool = pool(["a", "b", "c"])
        pool.accepted("a", queueDepth: 9)
        pool.accepted("b", queueDepth: 2)
        pool.accepted("c", queueDepth: 5)
        XCTAssertEqual(pool.acquire(), "b")
        XCTAssertEqual(pool.pick(), "b")
    }

    func testIdleServicesShareTheWorkRoundRobin() {
        let pool = pool(["a", "b"])
        var chosen: [String] = []
        for _ in 0..<4 {
            let url = pool.acquire()!
            chosen.append(url)
            pool.release(url)
        }
        XCTAssertEqual(chosen, ["a", "b", "a", "b"])
    }

    func testRequestsInFlightCountAsLoad() {
        let pool = pool(["a", "b"])
        XCTAssertEqual(pool.acquire(), "a")
        XCTAssertEqual(pool.acquire(), "b")
        XCTAssertEqual(pool.acquire(), "a")
        XCTAssertEqual(pool.status().map(\.inFlight), [2, 1])
    }

    func testABusyServiceIsLeftAloneUntilItsRetryAfterEnds() {
        let pool = pool(["a", "b"])
        pool.backOff("a", seconds: 2)
        XCTAssertEqual(pool.acquire(), "b")
        XCTAssertNil(pool.acquire(excluding: ["b"]), "the busy service is not offered")
        clock.withLockedValue { $0 += 2.5 }
        XCTAssertEqual(pool.acquire(excluding: ["b"]), "a")
    }

    func testAnUnreachableServiceBacksOffLongerWithEachFailureInARow() {
        let pool = pool(["a", "b"])
        pool.unreachable("a")
        XCTAssertEqual(pool.status()[0].backingOffSeconds, 0.5, accuracy: 1e-9)
        pool.unreachable("a")
        pool.unreachable("a")
        XCTAssertEqual(pool.status()[0].backingOffSeconds, 2, accuracy: 1e-9)
        for _ in 0..<20 { pool.unreachable("a") }
        XCTAssertEqual(pool.status()[0].backingOffSeconds, 30, accuracy: 1e-9, "capped")
        pool.accepted("a", queueDepth: 0)
        XCTAssertEqual(pool.status()[0].failuresInARow, 0)
    }

    func testWhenEveryServiceBacksOffTheOneFreeSoonestIsPickedForOneOffRequests() {
        let pool = pool(["a", "b"])
        pool.backOff("a", seconds: 10)
        pool.backOff("b", seconds: 3)
        XCTAssertNil(pool.acquire())
        XCTAssertEqual(pool.pick(), "b")
    }
}
