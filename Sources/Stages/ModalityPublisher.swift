import Dicom
import Foundation
public import KafkaIO
import Wire

/// What a publishing run did.
public struct PublishSummary: Sendable {
    public var published = 0
    public var bytes = 0
    public var failed: [(path: String, reason: String)] = []
    public var seconds = 0.0
    public var labelled = 0
    /// DICOM files not published because they are not frontal chest radiographs (a CT, a lateral view).
    public var skipped: [(path: String, reason: String)] = []
}

/// The modality simulator: publishes image files to `xray.raw`, keyed by image id, with source,
/// acquired-at (the moment of sending), labels and patient when known, content type and a
/// fresh W3C trace context in the headers.
public struct ModalityPublisher: Sendable {
    public var topic: String
    public var source: String
    /// The site named in each record's xray.site header, unless the file's metadata names one.
    public var site: String?
    /// Images per second; nil sends as fast as the broker acknowledges.
    public var rate: Double?
    /// Sends awaiting acknowledgement at once.
    public var maxInFlight = 64
    /// DICOM files go through this (filter, de-identify) as they would through the gateway;
    /// without it a DICOM file fails (it would carry the patient's identifiers to the topic).
    public var dicom: DicomIntake?

    public init(topic: String, source: String, rate: Double? = nil) {
        self.topic = topic
        self.source = source
        self.rate = rate
    }

    /// The record for one file's bytes.
    public func record(for file: ImageFile, bytes: [UInt8], now: Int64 = epochMilliseconds()) -> OutgoingRecord {
        var metadata = file.metadata
        metadata.source = metadata.source ?? source
        metadata.site = metadata.site ?? site
        metadata.acquiredAt = now
        metadata.traceparent = metadata.traceparent ?? Self.newTraceparent()
        var headers = metadata.headerFields.map { KafkaHeader($0.name, $0.value) }
        if let type = ContentType.sniff(bytes) { headers.append(KafkaHeader(HeaderName.contentType, type)) }
        return OutgoingRecord(topic: topic, key: metadata.imageID, value: bytes, headers: headers)
    }

    /// Publishes the files in order, at `rate` if set; reports progress after each
    /// acknowledgement as (done, total). Unreadable files are counted, not fatal.
    public func publish(_ files: [ImageFile], with producer: KafkaProducer,
                        progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> PublishSummary {
        let start = ContinuousClock.now
        var summary = PublishSummary()
        try await withThrowingTaskGroup(of: Int.self) { group in
            var inFlight = 0
            for (index, file) in files.enumerated() {
                if let rate, rate > 0 {
                    let due = start + .seconds(Double(index) / rate)
                    if due > .now { try await Task.sleep(until: due, clock: .continuous) }
                }
                guard let data = FileManager.default.contents(atPath: file.path) else {
                    summary.failed.append((file.path, "cannot read the file"))
                    continue
                }
                let bytes = [UInt8](data)
                let record: OutgoingRecord
                if file.path.lowercased().hasSuffix(".dcm") || ContentType.sniff(bytes) == ContentType.dicom {
                    guard let dicom else {
                        summary.failed.append((file.path, "a DICOM file is published only de-identified: give the pseudonym key (--key-file or XRAY_PSEUDONYM_KEY)"))
                        continue
                    }
                    switch dicom.prepare(bytes, source: file.metadata.source ?? source, labels: file.metadata.labels) {
                    case .publish(let prepared, _): record = prepared
                    case .skip(let skip):
                        summary.skipped.append((file.path, skip.detail))
                        continue
                    case .refuse(_, let reason):
                        summary.failed.append((file.path, reason))
                        continue
                    }
                } else {
                    record = self.record(for: file, bytes: bytes)
                }
                if file.metadata.labels != nil { summary.labelled += 1 }
                if inFlight >= maxInFlight {
                    summary.bytes += try await group.next() ?? 0
                    summary.published += 1
                    inFlight -= 1
                    progress(summary.published, files.count)
                }
                group.addTask {
                    try await producer.send(record)
                    return record.value.count
                }
                inFlight += 1
            }
            while let bytes = try await group.next() {
                summary.bytes += bytes
                summary.published += 1
                progress(summary.published, files.count)
            }
        }
        summary.seconds = (ContinuousClock.now - start) / .seconds(1)
        return summary
    }

    /// A W3C traceparent with random trace and span ids, sampled.
    static func newTraceparent() -> String {
        func hex(_ count: Int) -> String {
            (0..<count).map { _ in String(UInt8.random(in: 0...255), radix: 16).leftPadded(to: 2) }.joined()
        }
        return "00-\(hex(16))-\(hex(8))-01"
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
