public import KafkaIO

/// Records in and out per second, and lag, from successive looks at the cluster: each topic's
/// high watermarks (records in) and each consumer group's committed offsets (records out).
/// Rates are over the last `window` seconds of samples. Pure: the console feeds it samples.
public struct FlowTracker: Sendable {
    /// One look at the cluster.
    public struct Sample: Sendable {
        public var at: Double
        /// End offset of each partition of the watched topics.
        public var ends: [TopicPartition: Int64]
        public var groups: [ConsumerGroupListing]
        /// Committed offsets of each group.
        public var committed: [String: [TopicPartition: Int64]]

        public init(at: Double, ends: [TopicPartition: Int64], groups: [ConsumerGroupListing],
                    committed: [String: [TopicPartition: Int64]]) {
            self.at = at; self.ends = ends; self.groups = groups; self.committed = committed
        }
    }

    public struct TopicFlow: Sendable, Equatable, Codable {
        public var topic: String
        public var partitions: Int
        /// Records written so far (sum of the high watermarks).
        public var records: Int64
        public var inPerSecond: Double
    }

    public struct GroupFlow: Sendable, Equatable, Codable {
        public var group: String
        public var state: String
        /// The client ids of the group's members (its instances).
        public var instances: [String]
        public var topics: [String]
        public var outPerSecond: Double
        /// Records written but not yet committed by the group, over the partitions it reads.
        public var lag: Int64
    }

    public var window: Double
    public private(set) var samples: [Sample] = []
    /// Lag per group over time (seconds, records), for the plot.
    public private(set) var lagHistory: [String: [(at: Double, lag: Int64)]] = [:]
    public var historySeconds: Double = 600

    public init(window: Double = 10) { self.window = window }

    public mutating func add(_ sample: Sample) {
        samples.append(sample)
        samples.removeAll { sample.at - $0.at > window }
        for group in groups(latest: sample) {
            lagHistory[group.group, default: []].append((sample.at, group.lag))
            lagHistory[group.group]?.removeAll { sample.at - $0.at > historySeconds }
        }
    }

    /// The newest figures per topic.
    public var topics: [TopicFlow] {
        guard let last = samples.last else { return [] }
        let first = samples.first ?? last
        let span = last.at - first.at
        let byTopic = Dictionary(grouping: last.ends.keys, by: \.topic)
        return byTopic.keys.sorted().map { topic in
            let parts = byTopic[topic] ?? []
            let now = parts.reduce(Int64(0)) { $0 &+ (last.ends[$1] ?? 0) }
            let then = parts.reduce(Int64(0)) { $0 &+ (first.ends[$1] ?? last.ends[$1] ?? 0) }
            return TopicFlow(topic: topic, partitions: parts.count, records: now,
                             inPerSecond: span > 0 ? Double(max(0, now &- then)) / span : 0)
        }
    }

    /// The newest figures per consumer group.
    public var groups: [GroupFlow] {
        guard let last = samples.last else { return [] }
        return groups(latest: last)
    }

    private func groups(latest last: Sample) -> [GroupFlow] {
        let first = samples.first ?? last
        let span = last.at - first.at
        let names = Set(last.groups.map(\.name)).union(last.committed.keys)
        return names.sorted().map { name in
            let listing = last.groups.first { $0.name == name }
            let committed = last.committed[name] ?? [:]
            let before = first.committed[name] ?? committed
            var lag: Int64 = 0, moved: Int64 = 0
            for (tp, offset) in committed {
                if let end = last.ends[tp] { lag &+= max(0, end &- offset) }
                moved &+= max(0, offset &- (before[tp] ?? offset))
            }
            return GroupFlow(group: name, state: listing?.state ?? "unknown",
                             instances: (listing?.members ?? []).map(\.clientID).sorted(),
                             topics: Set(committed.keys.map(\.topic)).sorted(),
                             outPerSecond: span > 0 ? Double(moved) / span : 0, lag: lag)
        }
    }
}
