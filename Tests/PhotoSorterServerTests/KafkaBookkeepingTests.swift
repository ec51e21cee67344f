@testable import PhotoSorterServer
import XCTest

/// The Kafka queue's bookkeeping without a broker: which offsets may be committed, when a batch counts as published.
final class KafkaBookkeepingTests: XCTestCase {
    func testOffsetsAreCommittedOnlyUpToTheFirstPhotoNotHandedOver() {
        let book = KafkaConsumerBook()
        book.assigned([0, 1])
        for (offset, photo) in [(0, 10), (1, 11), (2, 12)] { book.received(photoID: Int64(photo), partition: 0, offset: Int64(offset)) }
        book.received(photoID: 20, partition: 1, offset: 7)
        let taken = book.take(10)
        XCTAssertEqual(taken.map(\.photoID), [10, 11, 12, 20])
        XCTAssertTrue(book.positionsToCommit().isEmpty, "nothing is committed before a photo is handed over")

        book.hold(taken.filter { $0.photoID != 12 })
        book.settle(taken.filter { $0.photoID == 12 })   // its photo was not READY: skipped
        book.handedOver([11])
        XCTAssertTrue(book.positionsToCommit().isEmpty, "photo 10 (offset 0) is not handed over yet")
        book.handedOver([10, 20])
        XCTAssertEqual(book.positionsToCommit().map { [Int64($0.partition), $0.offset] }, [[0, 3], [1, 8]])
        XCTAssertTrue(book.positionsToCommit().isEmpty, "a position is committed once")
        book.commitFailed([1])
        XCTAssertEqual(book.positionsToCommit().map { [Int64($0.partition), $0.offset] }, [[1, 8]], "a failed commit is made again")
    }

    func testRevokedPartitionsAreNeitherClaimedNorCommittedByTheOldOwner() {
        let book = KafkaConsumerBook()
        book.assigned([0, 1])
        book.received(photoID: 1, partition: 0, offset: 0)
        book.received(photoID: 2, partition: 1, offset: 0)
        book.received(photoID: 3, partition: 1, offset: 1)
        book.hold(book.take(1))                                      // photo 1 claimed, in flight
        XCTAssertEqual(book.revoking([0]).count, 0)
        book.revoked([0])
        book.handedOver([1])                                         // handed over after the partition left
        XCTAssertTrue(book.positionsToCommit().isEmpty, "partition 0 is another member's now")
        XCTAssertEqual(book.take(10).map(\.photoID), [2, 3], "partition 1 messages stay")
        book.assigned([0])                                           // back again: consumed anew from the committed position
        book.received(photoID: 1, partition: 0, offset: 0)
        let again = book.take(1)
        book.settle(again)
        XCTAssertEqual(book.positionsToCommit().map { [Int64($0.partition), $0.offset] }, [[0, 1]])
    }

    func testBatchIsPublishedOnlyWhenEveryDeliveryReportSucceeded() {
        let ledger = KafkaPublishLedger()
        let batch = IngestBatchRef(jobID: "job", index: 3)
        let publication = ledger.begin(batch, count: 3)
        let tokens = (1...3).map { ledger.register(photoID: Int64($0), publication: publication, at: 1000) }
        XCTAssertNil(ledger.delivered(tokens[0], error: nil))
        XCTAssertNil(ledger.delivered(tokens[1], error: "Local: Message timed out"))
        XCTAssertTrue(ledger.hasFailures)
        let outcome = ledger.delivered(tokens[2], error: nil)
        XCTAssertEqual(outcome, .init(batch: batch, total: 3, failed: 1, error: "Local: Message timed out"))
        XCTAssertEqual(outcome?.succeeded, false)

        let retry = ledger.begin(batch, count: 1)
        XCTAssertEqual(ledger.delivered(ledger.register(photoID: 2, publication: retry, at: 2000), error: nil)?.succeeded, true)
    }

    func testReadyPhotoIsRepublishedOnlyWithoutARecentMessage() {
        let ledger = KafkaPublishLedger()
        _ = ledger.register(photoID: 5, publication: nil, at: 10_000)
        XCTAssertFalse(ledger.needsPublishing(5, updatedAt: 9_000, now: 20_000, staleAfterMs: 60_000), "published since it changed")
        XCTAssertTrue(ledger.needsPublishing(5, updatedAt: 15_000, now: 20_000, staleAfterMs: 60_000), "READY again after the message")
        XCTAssertTrue(ledger.needsPublishing(5, updatedAt: 9_000, now: 80_000, staleAfterMs: 60_000), "the broker may have lost it")
        XCTAssertTrue(ledger.needsPublishing(6, updatedAt: 9_000, now: 20_000, staleAfterMs: 60_000), "never published here")
        ledger.forget([5])
        XCTAssertTrue(ledger.needsPublishing(5, updatedAt: 9_000, now: 20_000, staleAfterMs: 60_000))
    }
}
