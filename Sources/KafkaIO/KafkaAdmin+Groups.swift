internal import CRdKafka

/// A consumer group as the broker lists it: its state and the clients that are its members.
public struct ConsumerGroupListing: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var memberID: String
        public var clientID: String
        public var host: String
        public init(memberID: String, clientID: String, host: String) {
            self.memberID = memberID; self.clientID = clientID; self.host = host
        }
    }
    public var name: String
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead` (as the broker says).
    public var state: String
    public var members: [Member]

    public init(name: String, state: String, members: [Member]) {
        self.name = name; self.state = state; self.members = members
    }
}

extension KafkaAdmin {
    /// Every consumer group the cluster knows, with its members (ListGroups + DescribeGroups).
    public func consumerGroups() async throws -> [ConsumerGroupListing] {
        try await blocking { [client, timeoutMilliseconds] in
            var list: UnsafePointer<rd_kafka_group_list>?
            let err = rd_kafka_list_groups(client.pointer, nil, &list, timeoutMilliseconds)
            defer { if let list { rd_kafka_group_list_destroy(list) } }
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "listing consumer groups") }
            guard let list, let groups = list.pointee.groups else { return [] }
            return (0..<Int(max(0, list.pointee.group_cnt))).map { i -> ConsumerGroupListing in
                let g = groups[i]
                let members = (0..<Int(max(0, g.member_cnt))).compactMap { j -> ConsumerGroupListing.Member? in
                    guard let m = g.members?[j] else { return nil }
                    return .init(memberID: string(m.member_id), clientID: string(m.client_id), host: string(m.client_host))
                }
                return ConsumerGroupListing(name: string(g.group), state: string(g.state), members: members)
            }
        }
    }

    /// The offsets `group` has committed, per partition (ListConsumerGroupOffsets); partitions
    /// without a commit are left out.
    public func committedOffsets(group: String) async throws -> [TopicPartition: Int64] {
        let answers = try await committedOffsets(groups: [group])
        switch answers[group] {
        case .success(let offsets): return offsets
        case .failure(let error): throw error
        case nil: return [:]
        }
    }

    /// The offsets each of `groups` has committed, per partition, or why the broker would not
    /// say (a group deleted since it was listed). The requests go out together and are
    /// answered as the broker gets to them, so asking for many groups costs about one round
    /// trip, not one per group. Throws when the broker does not answer them all in time.
    public func committedOffsets(groups: [String]) async throws -> [String: Result<[TopicPartition: Int64], KafkaError>] {
        guard !groups.isEmpty else { return [:] }
        return try await blocking { [client, timeoutMilliseconds] in
            var answers: [String: Result<[TopicPartition: Int64], KafkaError>] = [:]
            try Self.requests(client, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeoutMilliseconds, count: groups.count,
                              issue: { rk, options, queue, index in
                                  guard let request = rd_kafka_ListConsumerGroupOffsets_new(groups[index], nil) else {
                                      throw KafkaError.local("INVALID_ARG", "cannot ask for the offsets of group \(groups[index])")
                                  }
                                  defer { rd_kafka_ListConsumerGroupOffsets_destroy(request) }
                                  var list: [OpaquePointer?] = [request]
                                  rd_kafka_ListConsumerGroupOffsets(rk, &list, 1, options, queue)
                              },
                              answer: { index, outcome in
                                  switch outcome {
                                  case .failure(let error):
                                      // A request that failed as a whole names no group: its index does.
                                      if groups.indices.contains(index) { answers[groups[index]] = .failure(error) }
                                  case .success(let event):
                                      var count = 0
                                      let result = rd_kafka_event_ListConsumerGroupOffsets_result(event)
                                      let results = rd_kafka_ListConsumerGroupOffsets_result_groups(result, &count)
                                      for g in (0..<count).compactMap({ results?[$0] }) {
                                          guard let name = rd_kafka_group_result_name(g).map({ String(cString: $0) }) else { continue }
                                          answers[name] = Self.offsets(of: g, group: name)
                                      }
                                  }
                              })
            return answers
        }
    }

    /// The committed offsets in one group's result, or its error.
    private static func offsets(of g: OpaquePointer, group: String) -> Result<[TopicPartition: Int64], KafkaError> {
        if let error = rd_kafka_group_result_error(g) {
            return .failure(KafkaError(rd_kafka_error_code(error), context: "offsets of group \(group)"))
        }
        var offsets: [TopicPartition: Int64] = [:]
        if let parts = rd_kafka_group_result_partitions(g) {
            for j in 0..<Int(max(0, parts.pointee.cnt)) {
                let p = parts.pointee.elems[j]
                guard p.err == RD_KAFKA_RESP_ERR_NO_ERROR, p.offset >= 0, let topic = p.topic else { continue }
                offsets[TopicPartition(String(cString: topic), p.partition)] = p.offset
            }
        }
        return .success(offsets)
    }

    /// The end offset of every partition of `topics` that exists, asked of each partition's
    /// leader in one request (ListOffsets for the latest offset), not one round trip per
    /// partition as `watermarks(topics:)` takes. It is the high watermark, or the last stable
    /// offset while a transaction is open (librdkafka's default isolation, read_committed, as
    /// `watermarks` asks too).
    public func endOffsets(topics: [String]) async throws -> [TopicPartition: Int64] {
        let counts = try await partitionCounts(topics: nil).filter { topics.contains($0.key) }
        guard !counts.isEmpty else { return [:] }
        return try await blocking { [client, timeoutMilliseconds] in
            let total = counts.values.reduce(0, +)
            guard let list = rd_kafka_topic_partition_list_new(Int32(clamping: total)) else {
                throw KafkaError.local("NO_MEMORY", "cannot make a list of \(total) partitions")
            }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for (topic, count) in counts {
                for p in 0..<Int32(clamping: count) {
                    // A timestamp of -1 asks for the latest offset.
                    rd_kafka_topic_partition_list_add(list, topic, p)?.pointee.offset = -1
                }
            }
            let err = rd_kafka_offsets_for_times(client.pointer, list, timeoutMilliseconds)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(err, context: "asking where \(counts.count) topics end")
            }
            var ends: [TopicPartition: Int64] = [:]
            for i in 0..<Int(max(0, list.pointee.cnt)) {
                let p = list.pointee.elems[i]
                guard let topic = p.topic else { continue }
                if p.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError(p.err, context: "asking where \(String(cString: topic))[\(p.partition)] ends")
                }
                ends[TopicPartition(String(cString: topic), p.partition)] = p.offset
            }
            return ends
        }
    }

    /// Low and high watermarks of every partition of `topics` that exists.
    public func watermarks(topics: [String]) async throws -> [TopicPartition: (low: Int64, high: Int64)] {
        let counts = try await partitionCounts(topics: nil).filter { topics.contains($0.key) }
        return try await blocking { [client, timeoutMilliseconds] in
            var ends: [TopicPartition: (low: Int64, high: Int64)] = [:]
            for (topic, count) in counts {
                for p in 0..<Int32(clamping: count) {
                    var low: Int64 = 0, high: Int64 = 0
                    let err = rd_kafka_query_watermark_offsets(client.pointer, topic, p, &low, &high, timeoutMilliseconds)
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "asking where \(topic)[\(p)] ends") }
                    ends[TopicPartition(topic, p)] = (low, high)
                }
            }
            return ends
        }
    }
}

private func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}
