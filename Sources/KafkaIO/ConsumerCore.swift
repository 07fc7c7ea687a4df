internal import CRdKafka
import Logging
import Metrics
import Synchronization

/// The consumer's state shared between its poll thread (librdkafka's callbacks run there) and
/// the application's tasks: the bounded buffer of fetched records, the waiting reader, the
/// offset tracker, the pause state and the stall watch. Every librdkafka call here takes the
/// handle as an argument and runs on the poll thread or on the closing thread, never on the
/// async pool.
final class ConsumerCore: RDKafkaCallbackTarget {
    let logger: Logger
    let throttle = LogThrottle()
    let commitsEnabled: Bool
    private let maxBuffered: Int
    private let commitInterval: Duration
    /// Names the consumer in metrics and log lines: its group (or, outside a group, the group
    /// id it was given).
    let name: String
    /// Where reading starts on a partition nothing was read from yet: the group's committed
    /// offset or, without one, the earliest record (a group consumer); the earliest record (a
    /// whole topic from its beginning); or its end, which leaves no lag to see.
    enum Start { case committedElseEarliest, earliest, latest }
    private let start: Start
    private let stalled: Gauge
    private let reconnects: Counter

    struct State {
        var buffer: [KafkaRecord] = []
        var bufferHead = 0
        var waiter: CheckedContinuation<KafkaRecord?, Never>?
        var waiterDeadline: ContinuousClock.Instant?
        var tracker = OffsetTracker()
        var paused = false
        var closed = false
        var lastCommit = ContinuousClock.now
        var lastCheck = ContinuousClock.now
        var watch: StallWatch
        var assignmentWatch: AssignmentWatch
        var buffered: Int { buffer.count - bufferHead }
        mutating func popFirst() -> KafkaRecord? {
            guard bufferHead < buffer.count else { return nil }
            let record = buffer[bufferHead]
            bufferHead += 1
            if bufferHead > 64 && bufferHead * 2 > buffer.count {
                buffer.removeFirst(bufferHead)
                bufferHead = 0
            }
            return record
        }
    }
    let state: Mutex<State>

    init(logger: Logger, name: String, start: Start, commitsEnabled: Bool, maxBuffered: Int, commitInterval: Duration,
         stallAfter: Duration) {
        self.logger = logger
        self.name = name
        self.start = start
        self.commitsEnabled = commitsEnabled
        self.maxBuffered = max(maxBuffered, 1)
        self.commitInterval = commitInterval
        state = Mutex(State(watch: StallWatch(threshold: stallAfter), assignmentWatch: AssignmentWatch(threshold: stallAfter)))
        stalled = Gauge(label: "xray_consumer_stalled_seconds", dimensions: [("consumer", name)])
        reconnects = Counter(label: "xray_consumer_reconnects_total", dimensions: [("consumer", name)])
    }

    func clientError(_ error: KafkaError) {
        if error.isFatal {
            logger.critical("consumer failed: \(error)")
        } else {
            logThrottled(.warning, key: "error/\(error.name)", "consumer: \(error)")
        }
    }

    // MARK: The application's side

    func next(timeout: Duration?) async -> KafkaRecord? {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                state.withLock { s in
                    if let record = s.popFirst() {
                        continuation.resume(returning: record)
                    } else if s.closed || Task.isCancelled {
                        continuation.resume(returning: nil)
                    } else {
                        s.waiter = continuation
                        s.waiterDeadline = deadline
                    }
                }
            }
        } onCancel: {
            wakeWaiter()
        }
    }

    func complete(_ record: KafkaRecord) {
        state.withLock {
            _ = $0.tracker.completed(TopicPartition(record.topic, record.partition),
                                     offset: record.offset, generation: record.assignmentGeneration)
        }
    }

    func markClosed() {
        state.withLock { $0.closed = true }
        wakeWaiter()
    }

    private func wakeWaiter() {
        let waiter: CheckedContinuation<KafkaRecord?, Never>? = state.withLock { s in
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    // MARK: The poll thread's side

    /// One turn of the poll loop: flow control, one poll, due commits, reader timeouts, and
    /// once a second the stall watch (which may reconnect with a longer fetch wait).
    func pollOnce(_ connection: ConsumerConnection) {
        let client = connection.client
        let rk = client.pointer
        adjustFlow(rk)
        if let message = rd_kafka_consumer_poll(rk, 50) {
            handle(message)
            rd_kafka_message_destroy(message)
        }
        let (commitDue, checkDue) = state.withLock { s -> (Bool, Bool) in
            let now = ContinuousClock.now
            let commit = now - s.lastCommit >= commitInterval
            if commit { s.lastCommit = now }
            let check = now - s.lastCheck >= .seconds(1)
            if check { s.lastCheck = now }
            return (commit, check)
        }
        if commitDue { commit(rk, synchronous: false) }
        expireWaiter()
        if checkDue { watchForStall(connection, rk) }
    }

    /// Feeds the stall watch; logs a stalled consumer with its partitions and their lag, and
    /// reconnects it with a longer fetch wait while the wait may still grow.
    private func watchForStall(_ connection: ConsumerConnection, _ rk: OpaquePointer) {
        if case .group(let topics) = connection.subscription { watchForMissingAssignment(connection, rk, topics: topics) }
        let lag = lag(rk, askCommitted: true)
        let verdict = state.withLock { s in s.watch.observe(lag: lag, paused: s.paused, now: .now) }
        switch verdict {
        case .progressing:
            stalled.record(0)
        case .waiting(let waited):
            stalled.record(waited / .seconds(1))
        case .stalled(let waited, let warn):
            stalled.record(waited / .seconds(1))
            let behind = lag.filter { $0.value > 0 }.sorted { $0.key.description < $1.key.description }
                .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let wait = connection.fetchWaitMilliseconds
            if warn {
                logger.warning("consumer \(name) is stalled: nothing received for \(Int(waited / .seconds(1))) s while records wait on the broker (\(behind)); fetch.wait.max.ms is \(wait)")
            }
            reconnect(connection, after: waited)
        }
    }

    /// A group member that lost its partitions and got none back while its group's records
    /// wait unread (`AssignmentWatch`): says so and rejoins.
    private func watchForMissingAssignment(_ connection: ConsumerConnection, _ rk: OpaquePointer, topics: [String]) {
        let count = state.withLock { $0.tracker.assigned.count }
        guard state.withLock({ $0.assignmentWatch.observe(assigned: count, now: .now) }) else { return }
        guard let probe = probe(rk, connection.client, topics: topics) else { return }
        guard state.withLock({ $0.assignmentWatch.judge(probe, now: .now) }) else { return }
        let waiting = probe.filter { $0.value.high > ($0.value.committed ?? 0) }.sorted { $0.key.description < $1.key.description }
            .map { "\($0.key) committed \($0.value.committed.map(String.init) ?? "none"), end \($0.value.high)" }.joined(separator: ", ")
        logger.warning("consumer \(name) holds no partitions and its group reads none of its records (\(waiting)); joining the group again")
        do {
            _ = try connection.reconnect(core: self, resumeAt: [:], raisingWait: false)
            reconnects.increment()
        } catch {
            logger.error("consumer \(name) could not rejoin its group: \(error); trying again later")
        }
    }

    /// The group's committed offsets and the high watermarks of every partition of `topics`,
    /// asked of the broker (a few seconds at most); nil if it does not answer.
    private func probe(_ rk: OpaquePointer, _ client: RDKafkaClient, topics: [String]) -> AssignmentWatch.Probe? {
        guard let counts = try? client.partitionCounts(topics: topics, timeoutMilliseconds: 2000) else { return nil }
        let partitions = counts.flatMap { topic, count in (0..<Int32(clamping: count)).map { TopicPartition(topic, $0) } }
        guard let commits = committed(rk, partitions) else { return nil }
        var probe: AssignmentWatch.Probe = [:]
        for tp in partitions {
            var low: Int64 = 0, high: Int64 = 0
            guard rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &low, &high, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            probe[tp] = (commits[tp] ?? (high > low ? low : nil), high)
        }
        return probe
    }

    /// Replaces the handle with one whose fetch wait is four times longer (a broker slower
    /// than the wait answers every fetch empty), unless the wait is at its maximum.
    private func reconnect(_ connection: ConsumerConnection, after waited: Duration) {
        let resumeAt = state.withLock { $0.tracker.nextOffsets }
        let before = connection.fetchWaitMilliseconds
        do {
            guard let longer = try connection.reconnect(core: self, resumeAt: resumeAt, raisingWait: true) else { return }
            reconnects.increment()
            state.withLock { $0.watch.restart(at: .now) }
            logger.warning("consumer \(name) reconnected with fetch.wait.max.ms \(longer) (was \(before)) after \(Int(waited / .seconds(1))) s without records; a broker may need longer than the wait to serve a fetch (raise it with -X fetch.wait.max.ms)")
        } catch {
            logger.error("consumer \(name) could not reconnect: \(error); trying again at the next stall check")
        }
    }

    /// Per assigned partition, records on the broker not fetched yet: the high watermark (from
    /// the latest fetch response, cached by librdkafka; no request is made) minus the position.
    /// A partition nothing was read from yet has no position; with `askCommitted` (the poll
    /// thread only: it asks the group coordinator, waiting up to half a second) its committed
    /// offset stands in, or the low watermark when the group has none (reading starts at the
    /// earliest record). Partitions without both figures are left out.
    func lag(_ rk: OpaquePointer, askCommitted: Bool = false) -> [TopicPartition: Int64] {
        let partitions = Array(state.withLock { $0.tracker.assigned })
        guard !partitions.isEmpty, let list = rd_kafka_topic_partition_list_new(Int32(partitions.count)) else { return [:] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for tp in partitions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
        guard rd_kafka_position(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var positions: [TopicPartition: Int64] = [:]
        var unread: [TopicPartition] = []
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            let tp = TopicPartition(String(cString: element.topic), element.partition)
            if element.offset >= 0 { positions[tp] = element.offset } else { unread.append(tp) }
        }
        // Partitions whose start is known to be the low watermark.
        var fromEarliest = Set<TopicPartition>()
        if askCommitted, !unread.isEmpty {
            switch start {
            case .committedElseEarliest:
                if let commits = committed(rk, unread) {
                    positions.merge(commits) { $1 }
                    fromEarliest = Set(unread).subtracting(commits.keys)
                }
            case .earliest: fromEarliest = Set(unread)
            case .latest: break
            }
        }
        var result: [TopicPartition: Int64] = [:]
        for tp in partitions {
            var low: Int64 = 0, high: Int64 = 0
            guard rd_kafka_get_watermark_offsets(rk, tp.topic, tp.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  high >= 0 else { continue }
            if let position = positions[tp] {
                result[tp] = max(0, high - position)
            } else if fromEarliest.contains(tp), low >= 0 {
                result[tp] = max(0, high - low)
            }
        }
        return result
    }

    /// The group's committed offsets of `partitions` (those it has), asked of the coordinator;
    /// nil if it does not answer.
    private func committed(_ rk: OpaquePointer, _ partitions: [TopicPartition]) -> [TopicPartition: Int64]? {
        guard let list = rd_kafka_topic_partition_list_new(Int32(partitions.count)) else { return nil }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for tp in partitions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
        guard rd_kafka_committed(rk, list, 500) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        var result: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            if element.offset >= 0 { result[TopicPartition(String(cString: element.topic), element.partition)] = element.offset }
        }
        return result
    }

    private func expireWaiter() {
        let expired: CheckedContinuation<KafkaRecord?, Never>? = state.withLock { s in
            guard let deadline = s.waiterDeadline, s.waiter != nil, ContinuousClock.now >= deadline else { return nil }
            defer { s.waiter = nil; s.waiterDeadline = nil }
            return s.waiter
        }
        expired?.resume(returning: nil)
    }

    /// Pauses every assigned partition when the buffer is full; resumes at half.
    private func adjustFlow(_ rk: OpaquePointer) {
        let action: Bool? = state.withLock { s in
            if !s.paused && s.buffered >= maxBuffered { s.paused = true; return true }
            if s.paused && s.buffered <= maxBuffered / 2 { s.paused = false; return false }
            return nil
        }
        guard let pause = action else { return }
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        setPaused(pause, rk, list)
    }

    /// Pauses or resumes the partitions in `list` in librdkafka.
    private func setPaused(_ pause: Bool, _ rk: OpaquePointer, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        if pause { _ = rd_kafka_pause_partitions(rk, list) } else { _ = rd_kafka_resume_partitions(rk, list) }
        logger.debug("\(pause ? "paused" : "resumed") \(list.pointee.cnt) partitions (buffer \(maxBuffered))")
    }

    /// Takes one polled message. librdkafka finds its internal message from this pointer, so the
    /// pointer itself (never a copy of the struct) goes to the header and timestamp calls.
    private func handle(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let m = message.pointee
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return }
            var error = KafkaError(m.err, context: "consuming")
            if m.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
                error = KafkaError(m.err, context: "a subscribed topic does not exist yet (create it with `xray topics apply`)")
            }
            logger.warning("\(error)")
            return
        }
        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        let tp = TopicPartition(topic, m.partition)
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        let headers = Self.headers(of: message)

        // Hand the record to a waiting reader, or buffer it; a record of a partition revoked
        // meanwhile is dropped (the group will deliver it to its new owner).
        let handOff: (CheckedContinuation<KafkaRecord?, Never>, KafkaRecord)? = state.withLock { s in
            guard let generation = s.tracker.received(tp, offset: m.offset) else { return nil }
            s.watch.received()
            let record = KafkaRecord(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
                                     headers: headers, timestampMilliseconds: timestamp >= 0 ? timestamp : nil,
                                     generation: generation)
            guard let waiter = s.waiter else {
                s.buffer.append(record)
                return nil
            }
            s.waiter = nil
            s.waiterDeadline = nil
            return (waiter, record)
        }
        if let (waiter, record) = handOff { waiter.resume(returning: record) }
    }

    private static func headers(of message: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
        var result: [KafkaHeader] = []
        var index = 0
        while true {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            guard rd_kafka_header_get_all(hdrs, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { break }
            result.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "",
                                      value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
            index += 1
        }
        return result
    }

    // MARK: Commits and rebalances

    /// Commits the commit points that moved (only for `subset` if given).
    func commit(_ rk: OpaquePointer, synchronous: Bool, only subset: Set<TopicPartition>? = nil) {
        guard commitsEnabled else { return }
        let points = state.withLock { $0.tracker.pendingCommits(only: subset) }
        guard !points.isEmpty else { return }
        guard let list = rd_kafka_topic_partition_list_new(Int32(clamping: points.count)) else {
            logger.error("cannot make a list of \(points.count) partitions to commit; their commits wait for the next one")
            return
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in points {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = offset
        }
        state.withLock { $0.tracker.markCommitted(points) }
        let err = rd_kafka_commit(rk, list, synchronous ? 0 : 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            state.withLock { $0.tracker.commitFailed(Array(points.keys)) }
            logger.warning("\(KafkaError(err, context: "committing \(points.count) partitions; will retry"))")
        } else {
            logger.trace("committed \(points.sorted { $0.key.description < $1.key.description }.map { "\($0.key)@\($0.value)" })")
        }
    }

    func commitResult(_ err: rd_kafka_resp_err_t, _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR, err != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
        let tps = offsets.map(Self.topicPartitions) ?? []
        state.withLock { $0.tracker.commitFailed(tps) }
        logger.warning("\(KafkaError(err, context: "commit of \(tps.count) partitions failed; will retry"))")
    }

    func rebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t,
                   _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        let tps = Self.topicPartitions(partitions)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let paused = state.withLock { s in
                s.tracker.assign(tps)
                return s.paused
            }
            let error = cooperative ? rd_kafka_incremental_assign(rk, partitions).map { KafkaError(consuming: $0) }
                                    : nonZero(rd_kafka_assign(rk, partitions))
            // librdkafka keeps a partition's pause across a revoke and a new assignment (a
            // partition lost while paused comes back paused). Give the new partitions the
            // flow state in force, so none stays paused with nobody to resume it.
            setPaused(paused, rk, partitions)
            logger.info("assigned \(tps.map(\.description).sorted()) (\(cooperative ? "cooperative" : "eager"))")
            if let error { logger.error("assign failed: \(error)") }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(rk) != 0
            if !lost { commit(rk, synchronous: true, only: Set(tps)) }
            state.withLock { s in
                s.tracker.revoke(tps)
                let revoked = Set(tps)
                let kept = s.buffer[s.bufferHead...].filter { !revoked.contains(TopicPartition($0.topic, $0.partition)) }
                s.buffer = Array(kept)
                s.bufferHead = 0
            }
            let error = cooperative ? rd_kafka_incremental_unassign(rk, partitions).map { KafkaError(consuming: $0) }
                                    : nonZero(rd_kafka_assign(rk, nil))
            logger.info("\(lost ? "lost" : "revoked") \(tps.map(\.description).sorted())")
            if let error { logger.error("unassign failed: \(error)") }
        default:
            logger.error("rebalance error: \(KafkaError(err)); dropping the assignment")
            state.withLock { $0.tracker.revoke(tps) }
            _ = rd_kafka_assign(rk, nil)
        }
    }

    private func nonZero(_ err: rd_kafka_resp_err_t) -> KafkaError? {
        err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(err)
    }

    static func topicPartitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        (0..<Int(list.pointee.cnt)).map {
            let e = list.pointee.elems[$0]
            return TopicPartition(String(cString: e.topic), e.partition)
        }
    }
}

/// librdkafka's rebalance callback. Runs on the thread that calls `rd_kafka_consumer_poll`
/// or `rd_kafka_consumer_close`.
let consumerRebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t,
                                               UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                                               UnsafeMutableRawPointer?) -> Void = { rk, err, partitions, opaque in
    guard let rk, let partitions, let opaque else { return }
    Unmanaged<ConsumerCore>.fromOpaque(opaque).takeUnretainedValue().rebalance(rk, err, partitions)
}

/// librdkafka's offset-commit result callback. Runs on the consumer's poll thread.
let consumerCommitCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t,
                                            UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                                            UnsafeMutableRawPointer?) -> Void = { _, err, offsets, opaque in
    guard let opaque else { return }
    Unmanaged<ConsumerCore>.fromOpaque(opaque).takeUnretainedValue().commitResult(err, offsets)
}
