import Foundation
public import KafkaIO
import Wire

/// Renders a record readably for `xray tail`: its coordinates, key, headers and a summary of
/// its value (the shape of binary images and tensors, JSON as is).
public enum RecordDescriber {
    public static func describe(_ record: KafkaRecord) -> String {
        var lines = ["\(record.topic)[\(record.partition)]@\(record.offset)  key=\(record.keyText ?? "-")"
                     + (record.timestampMilliseconds.map { "  ts=\($0)" } ?? "")]
        for header in record.headers {
            lines.append("  \(header.name): \(header.text ?? "<\(header.value?.count ?? 0) bytes>")")
        }
        lines.append("  value: " + summarize(record.value))
        return lines.joined(separator: "\n")
    }

    /// One line: partition@offset, key, labels, the value's summary and, for image records,
    /// how long after acquisition each stage finished.
    public static func oneLine(_ record: KafkaRecord) -> String {
        var parts = ["[\(record.partition)]@\(record.offset)", record.keyText ?? "-"]
        if let labels = record.headers.text(HeaderName.labels) { parts.append("labels=" + (labels.isEmpty ? "none" : labels)) }
        if let error = record.headers.text(HeaderName.DeadLetter.error) {
            parts.append("refused by \(record.headers.text(HeaderName.DeadLetter.stage) ?? "?"): \(error)")
        } else {
            parts.append(summarize(record.value))
        }
        if let acquired = record.headers.text(HeaderName.acquiredAt).flatMap({ Int64($0) }) {
            let stages = [("decoded", HeaderName.decodedAt), ("preprocessed", HeaderName.preprocessedAt)]
            let times = stages.compactMap { name, header in
                record.headers.text(header).flatMap { Int64($0) }.map { "\(name) +\(elapsed(from: acquired, to: $0)) ms" }
            }
            if !times.isEmpty { parts.append("(" + times.joined(separator: ", ") + ")") }
        }
        return parts.joined(separator: "  ")
    }

    public static func summarize(_ value: [UInt8]) -> String {
        if value.isEmpty { return "empty" }
        if value.starts(with: Array("XRDI".utf8)) {
            guard let image = try? DecodedImage(decoding: value) else { return "malformed decoded image (\(value.count) bytes)" }
            return "decoded image \(image.width)x\(image.height) gray8 (from \(image.originalWidth)x\(image.originalHeight), \(image.originalBitDepth)-bit, \(image.originalChannels) ch)"
        }
        if value.starts(with: Array("XRTN".utf8)) {
            guard let tensor = try? Tensor(decoding: value) else { return "malformed tensor (\(value.count) bytes)" }
            let v = tensor.values
            let mean = v.reduce(0, +) / Float(max(v.count, 1))
            return "tensor float32 \(tensor.shape) min \(fmt(v.min() ?? 0)) max \(fmt(v.max() ?? 0)) mean \(fmt(mean))"
        }
        if let type = ContentType.sniff(value) {
            if type == ContentType.png, value.count >= 24 {
                let w = value[16..<20].reduce(0) { $0 << 8 | Int($1) }, h = value[20..<24].reduce(0) { $0 << 8 | Int($1) }
                return "PNG \(w)x\(h), \(value.count) bytes"
            }
            return "\(type), \(value.count) bytes"
        }
        if let first = value.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
           let text = String(validating: value, as: UTF8.self) {
            return text
        }
        return "\(value.count) bytes: \(value.prefix(16).map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " "))"
    }

    private static func fmt(_ x: Float) -> String { String(format: "%.3f", x) }
}
