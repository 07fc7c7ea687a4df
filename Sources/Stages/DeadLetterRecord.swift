public import KafkaIO
public import Wire

extension DeadLetter {
    /// The dead-letter record for an input a stage refused: original key, value (cut to fit)
    /// and headers, plus the stage, the reason (the error's text and its `faultCode`) and
    /// where the input was read.
    public static func record(for input: KafkaRecord, stage: String, error: any Error, topic: String) -> OutgoingRecord {
        record(for: input, stage: stage, reason: "\(error)", code: faultCode(error), topic: topic)
    }

    public static func record(for input: KafkaRecord, stage: String, reason: String, code: String, topic: String) -> OutgoingRecord {
        let letter = DeadLetter(stage: stage, reason: reason, reasonCode: code, sourceTopic: input.topic,
                                sourcePartition: input.partition, sourceOffset: input.offset,
                                at: epochMilliseconds())
        let (value, cut) = DeadLetter.value(from: input.value)
        var headers = input.headers + letter.headerFields.map { KafkaHeader($0.name, $0.value) }
        if cut { headers.append(KafkaHeader(HeaderName.DeadLetter.originalSize, String(input.value.count))) }
        return OutgoingRecord(topic: topic, key: input.key, value: value, headers: headers)
    }
}
