/// How a refused record is written to `xray.deadletter` (see Topics/xray.deadletter.md): the
/// original key and value (cut to fit if needed) with the original headers, plus headers that
/// say which stage refused it, why, and where it was read.
public struct DeadLetter: Sendable {
    public var stage: String
    /// Why, in words an operator can act on.
    public var reason: String
    /// The kind of fault, short and stable: what metrics and alert rules match on.
    public var reasonCode: String
    public var sourceTopic: String
    public var sourcePartition: Int32
    public var sourceOffset: Int64
    /// Milliseconds since the epoch.
    public var at: Int64

    public init(stage: String, reason: String, reasonCode: String, sourceTopic: String, sourcePartition: Int32,
                sourceOffset: Int64, at: Int64) {
        self.stage = stage
        self.reason = reason
        self.reasonCode = reasonCode
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
        self.at = at
    }

    /// The headers to add after the original ones.
    public var headerFields: [(name: String, value: String)] {
        [(HeaderName.DeadLetter.stage, stage), (HeaderName.DeadLetter.error, reason), (HeaderName.DeadLetter.reason, reasonCode),
         (HeaderName.DeadLetter.topic, sourceTopic), (HeaderName.DeadLetter.partition, String(sourcePartition)),
         (HeaderName.DeadLetter.offset, String(sourceOffset)), (HeaderName.DeadLetter.at, String(at))]
    }

    /// The value to write: the original, or its first bytes when it would not fit the topic
    /// (then `originalSize` must be added to the headers).
    public static func value(from original: [UInt8]) -> (value: [UInt8], cut: Bool) {
        let room = TopicCatalog.deadletter.maxRecordBytes - 64 * 1024  // headroom for headers
        return original.count <= room ? (original, false) : (Array(original.prefix(room)), true)
    }
}
