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
        try await blocking { [client, timeoutMilliseconds] in
            guard let request = rd_kafka_ListConsumerGroupOffsets_new(group, nil) else {
                throw KafkaError.local("INVALID_ARG", "cannot ask for the offsets of group \(group)")
            }
            defer { rd_kafka_ListConsumerGroupOffsets_destroy(request) }
            var offsets: [TopicPartition: Int64] = [:]
            try Self.request(client, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeoutMilliseconds,
                             issue: { rk, options, queue in
                                 var list: [OpaquePointer?] = [request]
                                 rd_kafka_ListConsumerGroupOffsets(rk, &list, 1, options, queue)
                             },
                             check: { event in
                                 var count = 0
                                 let result = rd_kafka_event_ListConsumerGroupOffsets_result(event)
                                 let groups = rd_kafka_ListConsumerGroupOffsets_result_groups(result, &count)
                                 for i in 0..<count {
                                     guard let g = groups?[i] else { continue }
                                     if let error = rd_kafka_group_result_error(g) {
                                         throw KafkaError(rd_kafka_error_code(error), context: "offsets of group \(group)")
                                     }
                                     guard let parts = rd_kafka_group_result_partitions(g) else { continue }
                                     for j in 0..<Int(max(0, parts.pointee.cnt)) {
                                         let p = parts.pointee.elems[j]
                                         guard p.err == RD_KAFKA_RESP_ERR_NO_ERROR, p.offset >= 0, let topic = p.topic else { continue }
                                         offsets[TopicPartition(String(cString: topic), p.partition)] = p.offset
                                     }
                                 }
                             })
            return offsets
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
