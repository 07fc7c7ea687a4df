/// A topic as XRayStream expects it on the cluster. `Topics/<name>.md` documents each one, and
/// a test checks that those files and `TopicCatalog` agree.
public struct TopicSpec: Sendable, Equatable {
    /// The name without any deployment prefix, e.g. "xray.raw".
    public var name: String
    public var partitions: Int
    /// -1 keeps records forever.
    public var retentionMilliseconds: Int64
    /// "delete" or "compact".
    public var cleanupPolicy: String
    /// The largest record value the topic accepts (`max.message.bytes`).
    public var maxRecordBytes: Int
    /// The schema version of the value format documented in Topics/.
    public var schemaVersion: Int

    /// The broker configs this spec implies.
    public var configs: [String: String] {
        ["retention.ms": String(retentionMilliseconds), "cleanup.policy": cleanupPolicy,
         "max.message.bytes": String(maxRecordBytes)]
    }
}

/// Every topic of the system, and their names under an optional deployment prefix.
public struct TopicCatalog: Sendable {
    private static let day: Int64 = 86_400_000
    private static let mib = 1 << 20

    public static let raw = TopicSpec(name: "xray.raw", partitions: 6, retentionMilliseconds: 7 * day,
                                      cleanupPolicy: "delete", maxRecordBytes: 32 * mib, schemaVersion: 1)
    public static let decoded = TopicSpec(name: "xray.decoded", partitions: 6, retentionMilliseconds: 1 * day,
                                          cleanupPolicy: "delete", maxRecordBytes: 8 * mib, schemaVersion: 1)
    public static let tensors = TopicSpec(name: "xray.tensors", partitions: 6, retentionMilliseconds: 3 * day,
                                          cleanupPolicy: "delete", maxRecordBytes: 8 * mib, schemaVersion: 1)
    public static let predictions = TopicSpec(name: "xray.predictions", partitions: 6, retentionMilliseconds: 30 * day,
                                              cleanupPolicy: "delete", maxRecordBytes: 1 * mib, schemaVersion: 1)
    public static let alerts = TopicSpec(name: "xray.alerts", partitions: 3, retentionMilliseconds: 30 * day,
                                         cleanupPolicy: "delete", maxRecordBytes: 1 * mib, schemaVersion: 1)
    public static let gradients = TopicSpec(name: "xray.gradients", partitions: 4, retentionMilliseconds: 1 * day,
                                            cleanupPolicy: "delete", maxRecordBytes: 8 * mib, schemaVersion: 1)
    public static let models = TopicSpec(name: "xray.models", partitions: 1, retentionMilliseconds: -1,
                                         cleanupPolicy: "compact", maxRecordBytes: 8 * mib, schemaVersion: 1)
    public static let modelHeads = TopicSpec(name: "xray.models.heads", partitions: ModelHead.Partition.count, retentionMilliseconds: -1,
                                             cleanupPolicy: "compact", maxRecordBytes: 1 * mib, schemaVersion: 1)
    public static let checkpoints = TopicSpec(name: "xray.checkpoints", partitions: 1, retentionMilliseconds: -1,
                                              cleanupPolicy: "compact", maxRecordBytes: 8 * mib, schemaVersion: 1)
    public static let deadletter = TopicSpec(name: "xray.deadletter", partitions: 3, retentionMilliseconds: 30 * day,
                                             cleanupPolicy: "delete", maxRecordBytes: 33 * mib, schemaVersion: 1)

    public static let all = [raw, decoded, tensors, predictions, alerts, gradients, models, modelHeads, checkpoints, deadletter]

    /// Prepended to every topic name, so that several deployments (or test runs) share a cluster.
    public var prefix: String

    public init(prefix: String = "") { self.prefix = prefix }

    /// The name of a topic under this catalog's prefix.
    public func name(_ spec: TopicSpec) -> String { prefix + spec.name }

    public var raw: String { name(Self.raw) }
    public var decoded: String { name(Self.decoded) }
    public var tensors: String { name(Self.tensors) }
    public var predictions: String { name(Self.predictions) }
    public var alerts: String { name(Self.alerts) }
    public var gradients: String { name(Self.gradients) }
    public var models: String { name(Self.models) }
    public var modelHeads: String { name(Self.modelHeads) }
    public var checkpoints: String { name(Self.checkpoints) }
    public var deadletter: String { name(Self.deadletter) }
}
