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
}

/// A record refused by a stage, with a reason an operator can act on.
public struct BadInput: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Milliseconds since the Unix epoch, now.
public func epochMilliseconds() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded())
}

extension KafkaRecord {
    /// The image id: the `xray.image-id` header, else the key. Throws `BadInput` if neither.
    func imageID() throws -> String {
        if let id = headers.text(HeaderName.imageID) ?? keyText, !id.isEmpty { return id }
        throw BadInput("record has no image id (neither an xray.image-id header nor a key)")
    }

    /// The input's headers with `replacing` names removed and `adding` appended: what travels on.
    func headersPassedOn(replacing names: Set<String>, adding: [(String, String)]) -> [KafkaHeader] {
        headers.filter { !names.contains($0.name) } + adding.map { KafkaHeader($0.0, $0.1) }
    }
}
