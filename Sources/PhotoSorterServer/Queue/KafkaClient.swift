import CRdKafka
import Foundation
import Logging
import NIOConcurrencyHelpers

/// A Kafka problem, with librdkafka's reason.
public struct KafkaError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// librdkafka basics: version, error names, handles with their callbacks routed to Swift.
enum Kafka {
    /// The librdkafka the process runs with (the loader's choice, not the headers'): e.g. "2.0.2" or "2.16.0".
    static var version: String { String(cString: rd_kafka_version_str()) }
    /// `0xMMmmrrxx`, as `rd_kafka_version()`.
    static var versionNumber: Int { Int(rd_kafka_version()) }

    static let unassignedPartition: Int32 = -1   // RD_KAFKA_PARTITION_UA
    static let copyPayload: Int32 = 0x2          // RD_KAFKA_MSG_F_COPY

    static func describe(_ error: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(error)) }

    /// A new producer or consumer handle. librdkafka's callbacks (logs, errors, and what `configure` adds) reach
    /// `context` through the handle's opaque pointer, unretained: the owner keeps `context` alive longer than the handle.
    static func makeHandle(_ type: rd_kafka_type_t, settings: [(String, String)], context: KafkaContext,
                           configure: (OpaquePointer) -> Void = { _ in }) throws -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError("librdkafka could not allocate a configuration") }
        var errstr = [CChar](repeating: 0, count: 512)
        for (name, value) in settings where rd_kafka_conf_set(conf, name, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw KafkaError("librdkafka rejects \(name)=\(value): \(String(cString: errstr))")
        }
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            Unmanaged<KafkaContext>.fromOpaque(opaque).takeUnretainedValue()
                .log(level: level, facility: facility.map { String(cString: $0) } ?? "", message: message.map { String(cString: $0) } ?? "")
        }
        rd_kafka_conf_set_error_cb(conf) { _, error, reason, opaque in
            guard let opaque else { return }
            Unmanaged<KafkaContext>.fromOpaque(opaque).takeUnretainedValue()
                .clientError(rd_kafka_resp_err_t(rawValue: error), reason: reason.map { String(cString: $0) } ?? "")
        }
        configure(conf)
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError("librdkafka could not create a client: \(String(cString: errstr))")
        }
        return handle
    }

    /// Runs blocking librdkafka work (admin requests, flush, close) on its own thread, never on a concurrency or
    /// event-loop thread.
    static func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.name = name
            thread.start()
        }
    }
}

/// What librdkafka's callbacks reach: logging (librdkafka's own log lines go to the service's logger), client errors
/// (an unreachable broker is said clearly, once per `errorLogIntervalMs` per kind), and the per-handle hooks.
final class KafkaContext: Sendable {
    let role: String
    let brokers: String
    let logger: Logger
    let onDelivery: @Sendable (_ token: UInt, _ error: rd_kafka_resp_err_t, _ partition: Int32, _ offset: Int64) -> Void
    let onRebalance: @Sendable (_ handle: OpaquePointer, _ event: rd_kafka_resp_err_t,
                                _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void
    let onCommit: @Sendable (_ error: rd_kafka_resp_err_t, _ partitions: [Int32]) -> Void
    private let lastLogged = NIOLockedValueBox([Int32: Int64]())
    static let errorLogIntervalMs: Int64 = 30_000

    init(role: String, brokers: String, logger: Logger,
         onDelivery: @escaping @Sendable (UInt, rd_kafka_resp_err_t, Int32, Int64) -> Void = { _, _, _, _ in },
         onRebalance: @escaping @Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void
            = { _, _, _ in },
         onCommit: @escaping @Sendable (rd_kafka_resp_err_t, [Int32]) -> Void = { _, _ in }) {
        self.role = role
        self.brokers = brokers
        self.logger = logger
        self.onDelivery = onDelivery
        self.onRebalance = onRebalance
        self.onCommit = onCommit
    }

    func log(level: Int32, facility: String, message: String) {
        let metadata: Logger.Metadata = ["kafka_client": "\(role)", "facility": "\(facility)"]
        // syslog levels: 0-3 errors (connection refused shows here, reported clearly by clientError), 4 warning, 5-6 info.
        switch level {
        case ...4: logger.notice("librdkafka: \(message)", metadata: metadata)
        case 5...6: logger.debug("librdkafka: \(message)", metadata: metadata)
        default: logger.trace("librdkafka: \(message)", metadata: metadata)
        }
    }

    func clientError(_ error: rd_kafka_resp_err_t, reason: String) {
        let now = nowMs()
        let due = lastLogged.withLockedValue { last in
            guard now - (last[error.rawValue] ?? .min / 2) >= Self.errorLogIntervalMs else { return false }
            last[error.rawValue] = now
            return true
        }
        guard due else { return }
        let metadata: Logger.Metadata = ["kafka_client": "\(role)", "brokers": "\(brokers)", "reason": "\(reason)"]
        if error == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN {
            logger.error("""
                Kafka broker unreachable: none of PHOTO_SORTER_KAFKA_BROKERS=\(brokers) answers (\(reason)). Photos stay READY in \
                the database; batches that cannot be published are marked FAILED and republished when a broker is back
                """, metadata: metadata)
        } else if error == RD_KAFKA_RESP_ERR__TRANSPORT || error == RD_KAFKA_RESP_ERR__RESOLVE {
            logger.warning("Kafka broker connection failed: \(reason)", metadata: metadata)
        } else {
            logger.warning("Kafka client error \(Kafka.describe(error)): \(reason)", metadata: metadata)
        }
    }
}

/// Settings both clients share. Tansu needs the short session/poll timeouts; they also make a dead member's
/// partitions move quickly to the other instances.
private func commonSettings(brokers: String) -> [(String, String)] {
    [("bootstrap.servers", brokers), ("client.id", "photo-sorter"), ("log.connection.close", "false"),
     ("reconnect.backoff.max.ms", "2000"), ("socket.connection.setup.timeout.ms", "10000")]
}

/// Signals "finished" once to any number of waiters (a poll thread that stopped).
final class OneShot: Sendable {
    private let state = NIOLockedValueBox((done: false, waiters: [CheckedContinuation<Void, Never>]()))

    func fire() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let done = state.withLockedValue { state -> Bool in
                if !state.done { state.waiters.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }
}

/// An idempotent producer (`acks=all`, `enable.idempotence=true`) with its own poll thread serving delivery reports.
final class KafkaProducer: @unchecked Sendable {
    private let handle: OpaquePointer
    private let topic: OpaquePointer
    let topicName: String
    private let context: KafkaContext
    private let stop = NIOLockedValueBox<Int32?>(nil)   // flush timeout once asked to stop
    private let destroyed = NIOLockedValueBox(false)     // held while producing, so the handle cannot go meanwhile
    private let stopped = OneShot()

    init(brokers: String, topic: String, messageTimeoutMs: Int, context: KafkaContext) throws {
        self.context = context
        self.topicName = topic
        let settings = commonSettings(brokers: brokers) + [
            ("acks", "all"), ("enable.idempotence", "true"), ("message.timeout.ms", "\(messageTimeoutMs)"),
            ("partitioner", "murmur2_random"), ("linger.ms", "5"),
            // The topic is created by the admin API with the configured partitions, never implicitly by a metadata request.
            ("allow.auto.create.topics", "false"),
        ]
        handle = try Kafka.makeHandle(RD_KAFKA_PRODUCER, settings: settings, context: context) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
                guard let message, let opaque else { return }
                let m = message.pointee
                Unmanaged<KafkaContext>.fromOpaque(opaque).takeUnretainedValue()
                    .onDelivery(UInt(bitPattern: m._private), m.err, m.partition, m.offset)
            }
        }
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else {
            let error = Kafka.describe(rd_kafka_last_error())
            rd_kafka_destroy(handle)
            throw KafkaError("cannot open topic \(topic): \(error)")
        }
        self.topic = topicHandle
        let thread = Thread { [self] in pollLoop() }
        thread.name = "kafka-producer-poll"
        thread.start()
    }

    private func pollLoop() {
        while true {
            if let flushMs = stop.withLockedValue({ $0 }) {
                let result = rd_kafka_flush(handle, flushMs)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    context.logger.warning("Kafka producer closed with undelivered messages", metadata: [
                        "messages": "\(rd_kafka_outq_len(handle))", "reason": "\(Kafka.describe(result))"])
                }
                destroyed.withLockedValue { destroyed in
                    destroyed = true
                    rd_kafka_topic_destroy(topic)
                    rd_kafka_destroy(handle)
                }
                stopped.fire()
                return
            }
            rd_kafka_poll(handle, 100)
        }
    }

    /// Queues one message; its delivery report comes to `context.onDelivery` with `token`. Waits (up to
    /// `messageTimeoutMs`) while the local queue is full. Returns the error when the message could not be queued.
    func produce(key: String, value: [UInt8], token: UInt, waitMs: Int) async -> rd_kafka_resp_err_t {
        let deadline = nowMs() + Int64(waitMs)
        while true {
            let error = destroyed.withLockedValue { destroyed -> rd_kafka_resp_err_t in
                guard !destroyed else { return RD_KAFKA_RESP_ERR__DESTROY }
                let queued = value.withUnsafeBytes { payload in
                    key.withCString { keyBytes in
                        rd_kafka_produce(topic, Kafka.unassignedPartition, Kafka.copyPayload,
                                         UnsafeMutableRawPointer(mutating: payload.baseAddress), payload.count, keyBytes, strlen(keyBytes),
                                         UnsafeMutableRawPointer(bitPattern: token))
                    }
                }
                return queued == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_last_error()
            }
            if error == RD_KAFKA_RESP_ERR_NO_ERROR { return error }
            guard error == RD_KAFKA_RESP_ERR__QUEUE_FULL, nowMs() < deadline else { return error }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Messages queued or in flight (delivery report still to come).
    var outstanding: Int { destroyed.withLockedValue { $0 ? 0 : Int(rd_kafka_outq_len(handle)) } }

    /// Creates the topic with `partitions` partitions if it does not exist; returns its partition count. Blocking:
    /// call through `Kafka.onThread`.
    func ensureTopic(partitions: Int, timeoutMs: Int32) -> Result<Int, KafkaError> {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(topicName, Int32(partitions), -1, &errstr, errstr.count) else {
            return .failure(KafkaError("topic \(topicName): \(String(cString: errstr))"))
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &errstr, errstr.count)
        guard let queue = rd_kafka_queue_new(handle) else { return .failure(KafkaError("librdkafka could not allocate a queue")) }
        defer { rd_kafka_queue_destroy(queue) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(handle, &topics, 1, options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 2000) else {
            return .failure(KafkaError("no answer to CreateTopics within \(timeoutMs) ms"))
        }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .failure(KafkaError(String(cString: rd_kafka_event_error_string(event))))
        }
        var count = 0
        if let result = rd_kafka_event_CreateTopics_result(event), let results = rd_kafka_CreateTopics_result_topics(result, &count) {
            for index in 0..<count {
                let error = rd_kafka_topic_result_error(results[index])
                if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                    let reason = rd_kafka_topic_result_error_string(results[index]).map { String(cString: $0) } ?? Kafka.describe(error)
                    return .failure(KafkaError("cannot create topic \(topicName): \(reason)"))
                }
            }
        }
        return partitionCount(timeoutMs: timeoutMs)
    }

    private func partitionCount(timeoutMs: Int32) -> Result<Int, KafkaError> {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle, 0, topic, &metadata, Int32(timeoutMs))
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            return .failure(KafkaError("no metadata for topic \(topicName): \(Kafka.describe(error))"))
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0, let topic = metadata.pointee.topics else { return .failure(KafkaError("topic \(topicName) not found")) }
        if topic.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .failure(KafkaError("topic \(topicName): \(Kafka.describe(topic.pointee.err))"))
        }
        return .success(Int(topic.pointee.partition_cnt))
    }

    /// Delivers what is queued (up to `flushTimeoutMs`), then destroys the handle. Idempotent.
    func close(flushTimeoutMs: Int) async {
        stop.withLockedValue { if $0 == nil { $0 = Int32(flushTimeoutMs) } }
        await stopped.wait()
    }
}

/// A consumer in a group, subscribed to one topic, polled on its own thread. Messages go to `book`
/// (which the queue's `claim` takes from); offsets are committed from `book` (only what was handed over).
/// While `book` holds `bufferLimit` messages nobody claimed, the assigned partitions are paused.
final class KafkaConsumer: @unchecked Sendable {
    private let handle: OpaquePointer
    private let topicName: String
    private let book: KafkaConsumerBook
    private let context: KafkaContext
    private let bufferLimit: Int
    private let onMessages: @Sendable () -> Void
    private let stop = NIOLockedValueBox(false)
    private let stopped = OneShot()
    private var paused = false   // poll thread only
    private var pausedGeneration = 0

    init(brokers: String, group: String, topic: String, book: KafkaConsumerBook, bufferLimit: Int, logger: Logger,
         onMessages: @escaping @Sendable () -> Void) throws {
        self.topicName = topic
        self.book = book
        self.bufferLimit = bufferLimit
        self.onMessages = onMessages
        let context = KafkaContext(role: "consumer", brokers: brokers, logger: logger, onRebalance: { handle, event, partitions in
            KafkaConsumer.rebalance(handle, event: event, partitions: partitions, topic: topic, book: book, logger: logger)
        }, onCommit: { error, partitions in
            if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR__NO_OFFSET {
                logger.debug("Kafka offset commit failed; will commit again", metadata: ["reason": "\(Kafka.describe(error))"])
                book.commitFailed(partitions)
            }
        })
        self.context = context
        let settings = commonSettings(brokers: brokers) + [
            ("group.id", group), ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"), ("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "2000"),
            ("max.poll.interval.ms", "10000"), ("topic.metadata.refresh.interval.ms", "5000"), ("fetch.wait.max.ms", "100"),
        ]
        handle = try Kafka.makeHandle(RD_KAFKA_CONSUMER, settings: settings, context: context) { conf in
            rd_kafka_conf_set_rebalance_cb(conf) { handle, event, partitions, opaque in
                guard let handle, let opaque else { return }
                Unmanaged<KafkaContext>.fromOpaque(opaque).takeUnretainedValue().onRebalance(handle, event, partitions)
            }
            rd_kafka_conf_set_offset_commit_cb(conf) { _, error, offsets, opaque in
                guard let opaque else { return }
                var partitions: [Int32] = []
                if let offsets {
                    for index in 0..<Int(offsets.pointee.cnt) { partitions.append(offsets.pointee.elems[index].partition) }
                }
                Unmanaged<KafkaContext>.fromOpaque(opaque).takeUnretainedValue().onCommit(error, partitions)
            }
        }
        rd_kafka_poll_set_consumer(handle)
        let subscription = rd_kafka_topic_partition_list_new(1)
        rd_kafka_topic_partition_list_add(subscription, topic, Kafka.unassignedPartition)
        let error = rd_kafka_subscribe(handle, subscription)
        rd_kafka_topic_partition_list_destroy(subscription)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_destroy(handle)
            throw KafkaError("cannot subscribe to \(topic): \(Kafka.describe(error))")
        }
        let thread = Thread { [self] in pollLoop() }
        thread.name = "kafka-consumer-poll"
        thread.start()
    }

    private static func rebalance(_ handle: OpaquePointer, event: rd_kafka_resp_err_t,
                                  partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, topic: String,
                                  book: KafkaConsumerBook, logger: Logger) {
        var numbers: [Int32] = []
        if let partitions {
            for index in 0..<Int(partitions.pointee.cnt) { numbers.append(partitions.pointee.elems[index].partition) }
        }
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        switch event {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            book.assigned(numbers)
            logger.info("Kafka partitions assigned", metadata: ["topic": "\(topic)", "partitions": "\(numbers.sorted())"])
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) { rd_kafka_error_destroy(error) }
            } else {
                rd_kafka_assign(handle, partitions)
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            // What was handed over is committed before another member takes the partitions.
            commit(handle, topic: topic, positions: book.revoking(numbers), async: false)
            book.revoked(numbers)
            logger.info("Kafka partitions revoked", metadata: ["topic": "\(topic)", "partitions": "\(numbers.sorted())"])
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) { rd_kafka_error_destroy(error) }
            } else {
                rd_kafka_assign(handle, nil)
            }
        default:
            logger.warning("Kafka rebalance failed", metadata: ["reason": "\(Kafka.describe(event))"])
            book.revoked(numbers)
            rd_kafka_assign(handle, nil)
        }
    }

    private static func commit(_ handle: OpaquePointer, topic: String, positions: [(partition: Int32, offset: Int64)], async: Bool) {
        guard !positions.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(positions.count))
        for position in positions {
            rd_kafka_topic_partition_list_add(list, topic, position.partition)?.pointee.offset = position.offset
        }
        _ = rd_kafka_commit(handle, list, async ? 1 : 0)
        rd_kafka_topic_partition_list_destroy(list)
    }

    private func pollLoop() {
        var lastCommit = nowMs()
        while !stop.withLockedValue({ $0 }) {
            managePause()
            if let message = rd_kafka_consumer_poll(handle, 100) {
                receive(message.pointee)
                rd_kafka_message_destroy(message)
            }
            if nowMs() - lastCommit >= 100 {
                Self.commit(handle, topic: topicName, positions: book.positionsToCommit(), async: true)
                lastCommit = nowMs()
            }
        }
        Self.commit(handle, topic: topicName, positions: book.positionsToCommit(), async: false)
        let error = rd_kafka_consumer_close(handle)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            context.logger.notice("Kafka consumer closed with an error", metadata: ["reason": "\(Kafka.describe(error))"])
        }
        rd_kafka_destroy(handle)
        stopped.fire()
    }

    private func receive(_ message: rd_kafka_message_t) {
        guard message.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            if message.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                let reason = message.payload.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: message.len), as: UTF8.self) } ?? ""
                context.clientError(message.err, reason: reason.isEmpty ? Kafka.describe(message.err) : reason)
            }
            return
        }
        let key = message.key.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: message.key_len), as: UTF8.self) }
        let wasEmpty = book.received(photoID: key.flatMap { Int64($0) }, partition: message.partition, offset: message.offset)
        if wasEmpty { onMessages() }
    }

    /// Pauses fetching while the book holds `bufferLimit` unclaimed messages; resumes below half of it.
    private func managePause() {
        // A rebalance hands out partitions unpaused.
        if paused && book.generation != pausedGeneration { paused = false }
        let buffered = book.bufferedCount
        guard (!paused && buffered >= bufferLimit) || (paused && buffered <= bufferLimit / 2) else { return }
        var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let assignment else { return }
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        if paused { rd_kafka_resume_partitions(handle, assignment) } else { rd_kafka_pause_partitions(handle, assignment) }
        paused.toggle()
        pausedGeneration = book.generation
    }

    /// Commits what was handed over, leaves the group and destroys the handle. Idempotent.
    func close() async {
        stop.withLockedValue { $0 = true }
        await stopped.wait()
    }
}
