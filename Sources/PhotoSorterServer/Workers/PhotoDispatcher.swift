import Logging
import Metrics
import NIOConcurrencyHelpers

/// The workers: claim photos from the work queue and hand them to the ML service, keeping at most
/// `workerConcurrency` photos in flight (sent, result not yet called back). A busy ML service (429/503) or none
/// reachable pauses dispatch and puts the photo back without counting a failure (an ML service down for minutes
/// must not use up every queued photo's retries); a photo the ML service refused is marked FAILED.
public final class PhotoDispatcher: Sendable {
    private let queue: any WorkQueue
    private let ml: MLClient
    private let statuses: PhotosTable
    private let twins: ContentTwins
    private let callbackURL: String
    private let concurrency: Int
    private let logger: Logger
    private let inFlight = NIOLockedValueBox(Set<Int64>())
    private let pausedUntilMs = NIOLockedValueBox(Int64(0))
    private let firstAccepted = NIOLockedValueBox<Int64?>(nil)
    private let wake = AsyncSignal()
    private let drained = AsyncSignal()
    private let dispatched = Counter(label: "photo_sorter_photos_dispatched_total")
    private let dispatchFailures = Counter(label: "photo_sorter_dispatch_failures_total")
    private let busyAnswers = Counter(label: "photo_sorter_ml_busy_total")
    private let unavailableAnswers = Counter(label: "photo_sorter_ml_unavailable_total")
    /// How long dispatch pauses when no ML service could be reached.
    static let unavailablePauseMs: Int64 = 2000

    init(queue: any WorkQueue, ml: MLClient, statuses: PhotosTable, twins: ContentTwins, callbackURL: String, concurrency: Int,
         logger: Logger) {
        self.queue = queue
        self.ml = ml
        self.statuses = statuses
        self.twins = twins
        self.callbackURL = callbackURL
        self.concurrency = concurrency
        self.logger = logger
    }

    public var inFlightCount: Int { inFlight.withLockedValue { $0.count } }

    /// When an ML service first accepted a photo (ms since 1970), nil before: `sort`'s first photo in flight.
    public var firstAcceptedAtMs: Int64? { firstAccepted.withLockedValue { $0 } }

    /// The photo takes a slot until `finished`.
    func handedOut(_ photoID: Int64) {
        inFlight.withLockedValue { _ = $0.insert(photoID) }
    }

    /// The photo's result arrived (or it was given up): frees its slot.
    func finished(_ photoID: Int64) {
        let (removed, nothingLeft) = inFlight.withLockedValue { ($0.remove(photoID) != nil, $0.isEmpty) }
        guard removed else { return }
        Task {
            await wake.signal()
            if nothingLeft { await drained.signal() }
        }
    }

    /// Waits `milliseconds`, or less when the last photo in flight finishes meanwhile: `sort` asks whether its
    /// job is done at that moment instead of at its next poll.
    public func waitForDrain(upToMs milliseconds: Int64) async {
        await drained.wait(upToMs: milliseconds)
    }

    /// New work may be available (after an ingest batch or a retry).
    func poke() {
        Task { await wake.signal() }
    }

    /// Runs until the task is cancelled.
    func run() async {
        logger.info("workers started", metadata: ["concurrency": "\(concurrency)", "callback": "\(callbackURL)"])
        // A discarding group: finished dispatches leave nothing behind, however long the service runs.
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let pause = pausedUntilMs.withLockedValue { $0 } - nowMs()
                if pause > 0 {
                    await wake.wait(upToMs: pause)
                    continue
                }
                let capacity = concurrency - inFlightCount
                guard capacity > 0 else {
                    await wake.wait(upToMs: 1000)
                    continue
                }
                let items: [WorkItem]
                do {
                    items = try await queue.claim(limit: capacity)
                } catch {
                    logger.error("claiming work failed", metadata: ["error": "\(error)"])
                    await wake.wait(upToMs: 1000)
                    continue
                }
                if items.isEmpty {
                    await wake.wait(upToMs: 250)
                    continue
                }
                for item in items {
                    handedOut(item.photoID)
                    group.addTask { await self.dispatch(item) }
                }
            }
            group.cancelAll()
        }
        logger.info("workers stopped")
    }

    /// How long a photo waits for its twin's analysis (`ContentTwins`) before it is claimed again.
    static let twinWaitMs: Int64 = 1000

    private func dispatch(_ item: WorkItem) async {
        do {
            switch try await twins.decide(item) {
            case .analyse:
                break
            case .copied:
                await queue.handedOver([item])
                finished(item.photoID)
                return
            case .wait:
                try await statuses.requeue(item.photoID, delayMs: Self.twinWaitMs)
                try await queue.enqueue([item])
                await queue.handedOver([item])
                finished(item.photoID)
                return
            }
        } catch {
            logger.error("checking for a twin's analysis failed; analysing", metadata: ["photo_id": "\(item.photoID)", "error": "\(error)"])
        }
        dispatched.increment()
        let outcome = await ml.process(item, callbackURL: callbackURL)
        do {
            switch outcome {
            case .accepted:
                firstAccepted.withLockedValue { $0 = $0 ?? nowMs() }
                await queue.handedOver([item])
                return
            case .busy(let seconds):
                busyAnswers.increment()
                let delayMs = Int64(seconds * 1000)
                pausedUntilMs.withLockedValue { $0 = max($0, nowMs() + delayMs) }
                try await statuses.requeue(item.photoID, delayMs: delayMs)
                try await queue.enqueue([item])
                logger.debug("ML service busy, photo requeued", metadata: ["photo_id": "\(item.photoID)", "retry_after_s": "\(seconds)"])
            case .unavailable(let reason):
                unavailableAnswers.increment()
                let delayMs = Self.unavailablePauseMs
                pausedUntilMs.withLockedValue { $0 = max($0, nowMs() + delayMs) }
                try await statuses.requeue(item.photoID, delayMs: delayMs)
                try await queue.enqueue([item])
                logger.warning("no ML service reachable, photo requeued", metadata: ["photo_id": "\(item.photoID)", "error": "\(reason)"])
            case .failed(let reason):
                dispatchFailures.increment()
                try await statuses.markFailed(item.photoID, error: reason)
                logger.warning("dispatch failed", metadata: ["photo_id": "\(item.photoID)", "error": "\(reason)"])
            }
        } catch {
            logger.error("recording dispatch outcome failed", metadata: ["photo_id": "\(item.photoID)", "error": "\(error)"])
        }
        await queue.handedOver([item])
        finished(item.photoID)
    }
}
