import Foundation
@testable import PhotoSorterServer
import XCTest

/// `sort` asks whether its job is done the moment the last photo in flight is back (`waitForDrain`), not at its
/// next poll.
final class DispatchDrainTests: XCTestCase {
    func testWaitingForTheDrainEndsWhenTheLastPhotoInFlightIsBack() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            let dispatcher = service.services.dispatcher
            dispatcher.handedOut(1)
            dispatcher.handedOut(2)
            let waiter = Task {
                let started = ContinuousClock.now
                await dispatcher.waitForDrain(upToMs: 120_000)
                return ContinuousClock.now - started
            }
            dispatcher.finished(1)
            XCTAssertEqual(dispatcher.inFlightCount, 1, "one photo is still out")
            dispatcher.finished(2)
            let waited = await waiter.value
            XCTAssertEqual(dispatcher.inFlightCount, 0)
            XCTAssertLessThan(waited, .seconds(60), "woken by the last photo's return, not by the 120 s limit")
        }
    }

    func testAPhotoThatWasNotInFlightWakesNoWaiter() async throws {
        try await TestService.run(.sqlite, backgroundWork: false) { service in
            let dispatcher = service.services.dispatcher
            dispatcher.finished(7)  // e.g. a callback for a photo the stale scheduler already gave up
            let started = ContinuousClock.now
            await dispatcher.waitForDrain(upToMs: 300)
            XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(250), "nothing drained: the wait runs out")
        }
    }
}
