import CRdKafka
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import SQLKit

/// The work queue on Kafka (`PHOTO_SORTER_QUEUE=kafka`), through librdkafka.
///
/// - **Publish**: every photo an ingest batch committed READY becomes one message on the topic (default
///   `photos-to-process`), key = photo id, from an idempotent producer with `acks=all`. The batch row turns PUBLISHED
///   when the last delivery report of its photos came back without error, FAILED otherwise; the retry scheduler
///   republishes FAILED batches, and QUEUED ones whose reports never came (a crash between commit and publish).
/// - **Consume**: group `photo-sorter-workers`, polled on its own thread. `claim` marks the messages' photos PROCESSING
///   exactly as the database queue does, only where they are still READY — a redelivered message for a photo that is
///   PROCESSING or PROCESSED is skipped — and their offsets are committed once the dispatcher `handedOver` them.
/// - **The database stays the source of truth**: a photo is work while its row is READY. Photos made READY without a
///   message (a busy ML service, a retry, a reprocess, a manual status, a crash) are published again by a sweep, so
///   nothing depends on the broker keeping a message.
public final class KafkaWorkQueue: WorkQueue {
    public struct Settings: Sendable, Equatable {
        public var brokers: [String]
        public var topic: String
        public var partitions: Int
        public var group: String
        /// A message not acknowledged by the broker within this time fails its batch.
        public var messageTimeoutMs: Int
        /// A READY photo this instance holds no recent message for is published again after waiting this long.
        public var republishAfterMs: Int64
        /// Messages consumed ahead of the workers before the consumer pauses its partitions.
        public var bufferLimit: Int

        public init(config: ServiceConfig) {
            brokers = config.kafkaBrokers
            topic = config.kafkaTopic
            partitions = config.kafkaPartitions
            group = config.kafkaGroup
            messageTimeoutMs = Int(config.kafkaMessageTimeoutSeconds * 1000)
            republishAfterMs = Int64(config.kafkaRepublishAfterSeconds * 1000)
            // Enough to keep the workers busy across a pause/resume and a fetch round trip (messages are tiny).
            bufferLimit = max(64, 8 * config.workerConcurrency)
        }

        var brokerList: String { brokers.joined(separator: ",") }
        /// A QUEUED batch whose reports have not come in this long was never published (its process stopped).
        var queuedGraceMs: Int64 { Int64(messageTimeoutMs) + 10_000 }
        /// A message this old for a photo still READY may have been lost by the broker: the sweep publishes again.
        var staleMessageMs: Int64 { republishAfterMs * 10 }
    }

    public let settings: Settings
    private let database: PhotoSorterDatabase
    private let logger: Logger
    private let ledger = KafkaPublishLedger()
    private let book = KafkaConsumerBook()
    private let deliveries: KafkaDeliveries
    private let context: KafkaContext
    private let producer: NIOLockedValueBox<KafkaProducer>
    private let consumer = NIOLockedValueBox<KafkaConsumer?>(nil)
    private let topicReady = NIOLockedValueBox(false)
    private let lastTopicError = NIOLockedValueBox(Int64.min / 2)
    private let roundRunning = NIOLockedValueBox(false)
    private let lastSweep = NIOLockedValueBox(Int64(0))
    private let closed = NIOLockedValueBox(false)
    private let skipped = NIOLockedValueBox(0)
    private let skippedCounter = Counter(label: "photo_sorter_kafka_messages_skipped_total")
    private let claimedCounter = Counter(label: "photo_sorter_kafka_messages_claimed_total")

    /// Creates the producer (nothing is sent yet); `start` creates the topic if needed and joins the consumer group.
    public init(settings: Settings, database: PhotoSorterDatabase, logger: Logger) throws {
        self.settings = settings
        self.database = database
        self.logger = logger
        let deliveries = KafkaDeliveries(ledger: ledger, database: database, topic: settings.topic, logger: logger)
        self.deliveries = deliveries
        context = KafkaContext(role: "producer", brokers: settings.brokerList, logger: logger, onDelivery: { token, error, _, _ in
            deliveries.report(token, error: error)
        })
        producer = NIOLockedValueBox(try KafkaProducer(brokers: settings.brokerList, topic: settings.topic,
                                                       messageTimeoutMs: settings.messageTimeoutMs, context: context))
    }

    /// Redelivered messages skipped because their photo was no longer READY.
    var skippedMessages: Int { skipped.withLockedValue { $0 } }

    /// Creates the topic when missing (an unreachable broker is logged, not fatal: publishing waits for it) and
    /// joins the consumer group; `onMessages` is called when messages arrive for idle workers.
    func start(onMessages: @escaping @Sendable () -> Void) async throws {
        guard consumer.withLockedValue({ $0 == nil }), !closed.withLockedValue({ $0 }) else { return }
        logger.info("Kafka work queue starting", metadata: [
            "brokers": "\(settings.brokerList)", "topic": "\(settings.topic)", "group": "\(settings.group)",
            "librdkafka": "\(Kafka.version)"])
        _ = await ensureTopic()
        let consumer = try KafkaConsumer(brokers: settings.brokerList, group: settings.group, topic: settings.topic, book: book,
                                         bufferLimit: settings.bufferLimit, logger: logger, onMessages: onMessages)
        let existing = self.consumer.withLockedValue { current -> KafkaConsumer? in
            guard let current else { current = consumer; return nil }
            return current
        }
        if existing != nil { await consumer.close() }   // started twice at once: one member is enough
    }

    /// Leaves the consumer group (committing what was handed over), delivers what the producer holds and waits for
    /// the batch statuses those reports write. Idempotent.
    func shutdown() async {
        guard closed.withLockedValue({ closed in defer { closed = true }; return !closed }) else { return }
        if let consumer = consumer.withLockedValue({ consumer in defer { consumer = nil }; return consumer }) {
            await consumer.close()
        }
        await producer.withLockedValue { $0 }.close(flushTimeoutMs: min(settings.messageTimeoutMs, 10_000))
        await deliveries.waitForWrites()
    }

    // MARK: WorkQueue

    public func enqueue(_ items: [WorkItem], batch: IngestBatchRef?) async throws {
        guard !items.isEmpty else { return }
        guard !closed.withLockedValue({ $0 }) else {
            logger.notice("Kafka work queue closed; photos stay READY and are published at the next start", metadata: ["count": "\(items.count)"])
            return
        }
        let producer = self.producer.withLockedValue { $0 }
        let publication = batch.map { ledger.begin($0, count: items.count) }
        let encoder = JSONEncoder()
        let now = nowMs()
        for item in items {
            let token = ledger.register(photoID: item.photoID, publication: publication, at: now)
            let error = await producer.produce(key: String(item.photoID), value: Array(try encoder.encode(item)), token: token,
                                               waitMs: settings.messageTimeoutMs)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { deliveries.report(token, error: error) }
        }
    }

    public func claim(limit: Int) async throws -> [WorkItem] {
        let messages = book.take(limit)
        guard !messages.isEmpty else { return [] }
        let ids = Array(Set(messages.compactMap(\.photoID))).sorted()
        var claimed: [WorkItem] = []
        if !ids.isEmpty {
            do {
                // As the database queue: PROCESSING is the lease; only a READY photo can be taken.
                claimed = try await PhotosTable.claim(ids, on: database.sql)
            } catch {
                book.putBack(messages)
                throw error
            }
        }
        let claimedIDs = Set(claimed.map(\.photoID))
        let held = messages.filter { $0.photoID.map(claimedIDs.contains) ?? false }
        let passed = messages.filter { !($0.photoID.map(claimedIDs.contains) ?? false) }
        book.hold(held)
        book.settle(passed)
        ledger.forget(Array(claimedIDs))
        claimedCounter.increment(by: held.count)
        if !passed.isEmpty {
            skipped.withLockedValue { $0 += passed.count }
            skippedCounter.increment(by: passed.count)
            logger.debug("Kafka messages skipped: their photos are not READY (already taken or processed)", metadata: [
                "photo_ids": "\(passed.prefix(20).map { $0.photoID.map(String.init) ?? "?" })"])
        }
        return claimed.sorted { $0.photoID < $1.photoID }
    }

    public func pendingCount() async throws -> Int {
        let row = try await database.sql.raw("SELECT COUNT(*) AS n FROM photos WHERE status = 'READY'").first()
        return try row?.decode(column: "n", as: Int.self) ?? 0
    }

    public func handedOver(_ items: [WorkItem]) async {
        book.handedOver(items.map(\.photoID))
    }

    /// The retry scheduler's round: replaces a producer whose deliveries failed, makes sure the topic exists, then
    /// republishes FAILED and stale QUEUED batches and READY photos without a message.
    public func republish() async throws -> Int {
        guard roundRunning.withLockedValue({ running in defer { running = true }; return !running }) else { return 0 }
        defer { roundRunning.withLockedValue { $0 = false } }
        guard !closed.withLockedValue({ $0 }) else { return 0 }
        await replaceProducerAfterFailures()
        guard await ensureTopic() else { return 0 }
        let batches = try await republishBatches()
        // The READY sweep reads every waiting photo: a few times per republish period is enough.
        let now = nowMs()
        guard lastSweep.withLockedValue({ last in
            guard now - last >= settings.republishAfterMs / 4 else { return false }
            last = now
            return true
        }) else { return batches }
        return batches + (try await publishReadyPhotos(settledForMs: settings.republishAfterMs))
    }

    /// Photos were set READY outside `enqueue` (a reprocess, PUT /photo/update-status): publishes every READY photo
    /// this instance has no message for, now.
    func publishNewlyReady() async {
        do { _ = try await publishReadyPhotos(settledForMs: 0) } catch {
            logger.error("publishing READY photos to Kafka failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Republishing

    private func replaceProducerAfterFailures() async {
        guard ledger.hasFailures else { return }
        let old = producer.withLockedValue { $0 }
        // Every report of the old producer first: its messages' outcomes are still to be recorded.
        guard old.outstanding == 0 else { return }
        ledger.resetFailures()
        do {
            // A fresh producer id: a broker that lost its state (a restart without storage) refuses the old one for good.
            let fresh = try KafkaProducer(brokers: settings.brokerList, topic: settings.topic,
                                          messageTimeoutMs: settings.messageTimeoutMs, context: context)
            producer.withLockedValue { $0 = fresh }
            topicReady.withLockedValue { $0 = false }
            logger.notice("Kafka producer replaced after failed deliveries")
            Task { await old.close(flushTimeoutMs: self.settings.messageTimeoutMs) }
        } catch {
            logger.error("cannot create a new Kafka producer", metadata: ["error": "\(error)"])
        }
    }

    private func ensureTopic() async -> Bool {
        if topicReady.withLockedValue({ $0 }) { return true }
        let producer = self.producer.withLockedValue { $0 }
        let partitions = settings.partitions
        let result = await Kafka.onThread("kafka-admin") { producer.ensureTopic(partitions: partitions, timeoutMs: 5000) }
        switch result {
        case .success(let count):
            topicReady.withLockedValue { $0 = true }
            logger.info("Kafka topic ready", metadata: ["topic": "\(settings.topic)", "partitions": "\(count)"])
            if count != partitions {
                logger.notice("""
                    Kafka topic \(settings.topic) has \(count) partitions; PHOTO_SORTER_KAFKA_PARTITIONS=\(partitions) only applies \
                    when the service creates it
                    """)
            }
            return true
        case .failure(let error):
            let now = nowMs()
            let due = lastTopicError.withLockedValue { last in
                guard now - last >= KafkaContext.errorLogIntervalMs else { return false }
                last = now
                return true
            }
            if due {
                logger.error("""
                    Kafka broker unreachable: cannot create or find topic \(settings.topic) at \
                    PHOTO_SORTER_KAFKA_BROKERS=\(settings.brokerList) (\(error)). Photos stay READY in the database and are \
                    published when the broker answers
                    """)
            }
            return false
        }
    }

    private func republishBatches() async throws -> Int {
        let now = nowMs()
        let cutoff = now - settings.queuedGraceMs
        let due: SQLQueryString = """
            (status = 'FAILED' OR (status = 'QUEUED' AND COALESCE(queued_at, created_at) < \(bind: cutoff)))
            """
        // Batches with no READY photo left need no message.
        try await database.sql.raw("""
            UPDATE ingest_batches SET status = 'PUBLISHED'
            WHERE \(due) AND NOT EXISTS (SELECT 1 FROM photo_ingest_map m JOIN photos p ON p.id = m.photo_id
                WHERE m.batch_id = ingest_batches.id AND p.status = 'READY')
            """).run()
        let rows = try await database.sql.raw("""
            SELECT id, job_id, batch_index FROM ingest_batches WHERE \(due) ORDER BY id LIMIT 100
            """).all()
        var batches = 0, photos = 0
        for row in rows {
            let id = try row.decode(column: "id", as: Int64.self)
            let ref = IngestBatchRef(jobID: try row.decode(column: "job_id", as: String.self), index: try row.decode(column: "batch_index", as: Int.self))
            // Taken for this round (another instance sharing the database may be at the same batch).
            let taken = try await database.sql.raw("""
                UPDATE ingest_batches SET status = 'QUEUED', queued_at = \(bind: now) WHERE id = \(bind: id) AND \(due) RETURNING id
                """).all()
            guard !taken.isEmpty else { continue }
            let items = try await database.sql.raw("""
                SELECT p.id, p.path, p.attempt FROM photo_ingest_map m JOIN photos p ON p.id = m.photo_id
                WHERE m.batch_id = \(bind: id) AND p.status = 'READY' ORDER BY p.id
                """).all().map(WorkItem.init(row:))
            if items.isEmpty {
                try await database.sql.raw("UPDATE ingest_batches SET status = 'PUBLISHED' WHERE id = \(bind: id)").run()
                continue
            }
            try await enqueue(items, batch: ref)
            batches += 1
            photos += items.count
        }
        if batches > 0 {
            logger.notice("Kafka: batches republished", metadata: ["batches": "\(batches)", "photos": "\(photos)"])
        }
        return photos
    }

    /// Publishes READY photos that have waited at least `settledForMs` since they last changed and that this
    /// instance holds no message for (or only one old enough to have been lost).
    private func publishReadyPhotos(settledForMs: Int64) async throws -> Int {
        let now = nowMs()
        let rows = try await database.sql.raw("""
            SELECT id, path, attempt, updated_at FROM photos
            WHERE status = 'READY' AND updated_at <= \(bind: now - settledForMs) ORDER BY id LIMIT 20000
            """).all()
        var due: [WorkItem] = []
        for row in rows {
            let item = try WorkItem(row: row)
            let updatedAt = try row.decode(column: "updated_at", as: Int64?.self) ?? 0
            if ledger.needsPublishing(item.photoID, updatedAt: updatedAt, now: now, staleAfterMs: settings.staleMessageMs) {
                due.append(item)
            }
        }
        ledger.prune(olderThan: now - settings.staleMessageMs)
        guard !due.isEmpty else { return 0 }
        try await enqueue(due, batch: nil)
        logger.info("Kafka: READY photos without a message published", metadata: [
            "count": "\(due.count)", "photo_ids": "\(due.prefix(20).map(\.photoID))"])
        return due.count
    }
}

/// Delivery reports: counted, and when a batch publication's last report is in, its status written
/// (PUBLISHED or FAILED) by a task the shutdown waits for.
final class KafkaDeliveries: Sendable {
    private let ledger: KafkaPublishLedger
    private let database: PhotoSorterDatabase
    private let topic: String
    private let logger: Logger
    private let writes = NIOLockedValueBox((next: 0, tasks: [Int: Task<Void, Never>]()))
    private let delivered = Counter(label: "photo_sorter_kafka_messages_published_total")
    private let failed = Counter(label: "photo_sorter_kafka_publish_failures_total")

    init(ledger: KafkaPublishLedger, database: PhotoSorterDatabase, topic: String, logger: Logger) {
        self.ledger = ledger
        self.database = database
        self.topic = topic
        self.logger = logger
    }

    /// On the producer's poll thread (or `enqueue`'s, for a message that could not be queued).
    func report(_ token: UInt, error: rd_kafka_resp_err_t) {
        let reason = error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : Kafka.describe(error)
        if reason == nil { delivered.increment() } else { failed.increment() }
        guard let outcome = ledger.delivered(token, error: reason) else { return }
        writes.withLockedValue { writes in
            let id = writes.next
            writes.next += 1
            writes.tasks[id] = Task {
                await self.record(outcome)
                _ = self.writes.withLockedValue { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    private func record(_ outcome: KafkaPublishLedger.Outcome) async {
        let status = outcome.succeeded ? "PUBLISHED" : "FAILED"
        do {
            try await database.sql.raw("""
                UPDATE ingest_batches SET status = \(bind: status)
                WHERE job_id = \(bind: outcome.batch.jobID) AND batch_index = \(bind: outcome.batch.index)
                """).run()
        } catch {
            logger.error("recording a Kafka batch outcome failed", metadata: ["job_id": "\(outcome.batch.jobID)", "error": "\(error)"])
        }
        if !outcome.succeeded {
            logger.warning("""
                Kafka: batch \(outcome.batch.index) of job \(outcome.batch.jobID) not published (\(outcome.failed) of \(outcome.total) \
                messages failed: \(outcome.error ?? "?")); marked FAILED, the retry scheduler republishes it when the broker answers
                """, metadata: ["topic": "\(topic)"])
        }
    }

    func waitForWrites() async {
        while let task = writes.withLockedValue({ $0.tasks.values.first }) { await task.value }
    }
}
