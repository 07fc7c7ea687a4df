public import KafkaIO
public import Wire

extension DeadLetter {
    /// The dead-letter record for an input a stage refused: original key, value (cut to fit)
    /// and headers, plus the stage, the reason and where the input was read.
    public static func record(for input: KafkaRecord, stage: String, reason: String, topic: String) -> OutgoingRecord {
        let letter = DeadLetter(stage: stage, reason: reason, sourceTopic: input.topic,
                                sourcePartition: input.partition, sourceOffset: input.offset,
                                at: epochMilliseconds())
        let (value, cut) = DeadLetter.value(from: input.value)
        var headers = input.headers + letter.headerFields.map { KafkaHeader($0.name, $0.value) }
        if cut { headers.append(KafkaHeader(HeaderName.DeadLetter.originalSize, String(input.value.count))) }
        return OutgoingRecord(topic: topic, key: input.key, value: value, headers: headers)
    }
}
