public import KafkaIO
public import Imaging
public import Wire

/// xray.raw → xray.decoded: PNG or JPEG to 8-bit gray at a bounded working resolution.
public struct DecoderStage: Stage {
    public let name = "decoder"
    public let inputTopic: String
    let outputTopic: String
    let decoder: ImageDecoder

    public init(topics: TopicCatalog, limits: DecodeLimits = DecodeLimits()) {
        inputTopic = topics.raw
        outputTopic = topics.decoded
        decoder = ImageDecoder(limits: limits)
    }

    public func process(_ record: KafkaRecord) throws -> [OutgoingRecord] {
        let id = try record.imageID()
        let (image, source) = try decoder.decode(record.value)
        let decoded = DecodedImage(width: image.width, height: image.height, pixels: image.pixels,
                                   originalWidth: source.width, originalHeight: source.height,
                                   originalBitDepth: source.bitDepth, originalChannels: source.channels)
        let headers = record.headersPassedOn(
            replacing: [HeaderName.contentType, HeaderName.schema, HeaderName.imageID],
            adding: [(HeaderName.imageID, id), (HeaderName.contentType, ContentType.decodedImage),
                     (HeaderName.schema, String(DecodedImage.schemaVersion)),
                     (HeaderName.decodedAt, String(epochMilliseconds()))])
        return [OutgoingRecord(topic: outputTopic, key: id, value: decoded.encoded(), headers: headers)]
    }
}
