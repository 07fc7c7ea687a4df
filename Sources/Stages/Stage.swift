public import KafkaIO
import Foundation
import Wire

/// One step of the pipeline as a pure function: a record in, the records to produce out.
///
/// `process` does no I/O. Anything it throws is a fault of the input (malformed, unknown,
/// oversized): the runner sends the input to the dead-letter topic with the error's text and
/// moves on. A stage never sees Kafka beyond the records themselves.
public protocol Stage: Sendable {
    /// The stage's name: the default consumer group, and the `xray.dlq.stage` of its dead letters.
    var name: String { get }
    /// The topic the stage consumes.
    var inputTopic: String { get }
    /// The outputs of one input record. Throws when the input is bad.
    func process(_ record: KafkaRecord) throws -> [OutgoingRecord]
    /// How many records `process(batch:)` takes at once, and how long the runner may wait to
    /// fill a batch. One record, no waiting, unless the stage says otherwise.
    var batching: Batching { get }
    /// The outputs of each record of a batch, in order; a failure is that record's fault only.
    func process(batch: [KafkaRecord]) -> [Result<[OutgoingRecord], any Error>]
    /// Awaited before each batch is processed (a synchronous trainer waits for the version
    /// its last gradient makes). Returns at once unless the stage says otherwise.
    func beforeBatch() async throws
    /// Awaited once a batch's outputs are acknowledged, before its records count as done and
    /// may be committed (a synchronous trainer waits until its gradient is in a version, so a
    /// trainer stopped before then reads the batch again). Returns at once unless the stage
    /// says otherwise.
    func settle(_ batch: [KafkaRecord]) async throws
}

/// A stage's batching: up to `maxRecords` records, or whatever arrived within `maxWait` of the
/// first, whichever comes first.
public struct Batching: Sendable, Equatable {
    public var maxRecords: Int
    public var maxWait: Duration

    public init(maxRecords: Int, maxWait: Duration) {
        precondition(maxRecords >= 1)
        self.maxRecords = maxRecords
        self.maxWait = maxWait
    }

    public static let single = Batching(maxRecords: 1, maxWait: .zero)
}

extension Stage {
    public var batching: Batching { .single }

    public func process(batch: [KafkaRecord]) -> [Result<[OutgoingRecord], any Error>] {
        batch.map { record in Result { try process(record) } }
    }

    public func beforeBatch() async throws {}

    public func settle(_ batch: [KafkaRecord]) async throws {}
}

/// Milliseconds since the Unix epoch, now.
public func epochMilliseconds() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded())
}

extension KafkaRecord {
    /// The image id: the `xray.image-id` header, else the key. Throws `BadInput` if neither.
    func imageID() throws -> String {
        if let id = headers.text(HeaderName.imageID) ?? keyText, !id.isEmpty { return id }
        throw BadInput("record has no image id (neither an xray.image-id header nor a key)", code: "no-image-id")
    }

    /// The output a stage sends on for this input: keyed by the image id, carrying the input's
    /// headers with the content type and schema replaced and the stage's timestamp added.
    func passedOn(to topic: String, imageID: String, value: [UInt8], contentType: String, schema: UInt16,
                  timestampHeader: String) -> OutgoingRecord {
        let replaced: Set<String> = [HeaderName.contentType, HeaderName.schema, HeaderName.imageID, timestampHeader]
        let headers = self.headers.filter { !replaced.contains($0.name) } + [
            KafkaHeader(HeaderName.imageID, imageID), KafkaHeader(HeaderName.contentType, contentType),
            KafkaHeader(HeaderName.schema, String(schema)), KafkaHeader(timestampHeader, String(epochMilliseconds())),
        ]
        return OutgoingRecord(topic: topic, key: imageID, value: value, headers: headers)
    }
}
