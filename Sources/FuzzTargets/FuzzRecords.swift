public import KafkaIO

/// Kafka records from fuzz input, so that libFuzzer's mutations reach record headers as well
/// as values: the input is a sequence of records, each
/// ```
/// u8 partition, u8 header count,
///   per header: u8 name (an index into the target's header names), u16 LE length, bytes
/// u32 LE value length, value bytes
/// ```
/// A record cut short ends the sequence. `encode` writes records the same way (the seeds).
public enum FuzzRecords {
    /// The records in `bytes`, at most `limit` of them, with offsets 0, 1, 2...
    public static func decode(_ bytes: [UInt8], topic: String, headerNames: [String], limit: Int = 256) -> [KafkaRecord] {
        var reader = Reader(bytes: bytes)
        var records: [KafkaRecord] = []
        while records.count < limit, let partition = reader.byte(), let count = reader.byte() {
            var headers: [KafkaHeader] = []
            for _ in 0..<count {
                guard let name = reader.byte(), let length = reader.uint(2), let value = reader.take(length) else { return records }
                headers.append(KafkaHeader(name: headerNames.isEmpty ? "" : headerNames[Int(name) % headerNames.count], value: value))
            }
            guard let length = reader.uint(4), let value = reader.take(length) else { return records }
            records.append(KafkaRecord(topic: topic, partition: Int32(partition % 8), offset: Int64(records.count), key: nil,
                                       value: value, headers: headers))
        }
        return records
    }

    /// The bytes `decode` reads back as `records` (headers not in `headerNames` are left out).
    public static func encode(_ records: [OutgoingRecord], headerNames: [String]) -> [UInt8] {
        var out: [UInt8] = []
        for r in records {
            let headers = r.headers.compactMap { h in headerNames.firstIndex(of: h.name).map { (UInt8($0), h.value ?? []) } }
            out.append(UInt8(truncatingIfNeeded: r.partition ?? 0))
            out.append(UInt8(min(headers.count, 255)))
            for (index, value) in headers.prefix(255) {
                out.append(index)
                out += le(UInt32(min(value.count, 0xFFFF)), bytes: 2) + value.prefix(0xFFFF)
            }
            out += le(UInt32(r.value.count), bytes: 4) + r.value
        }
        return out
    }

    private static func le(_ value: UInt32, bytes: Int) -> [UInt8] {
        (0..<bytes).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        mutating func byte() -> UInt8? {
            guard position < bytes.count else { return nil }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func uint(_ width: Int) -> Int? {
            guard bytes.count - position >= width else { return nil }
            defer { position += width }
            return (0..<width).reduce(0) { $0 | Int(bytes[position + $1]) << (8 * $1) }
        }

        mutating func take(_ count: Int) -> [UInt8]? {
            guard bytes.count - position >= count else { return nil }
            defer { position += count }
            return Array(bytes[position..<(position + count)])
        }
    }
}
