import Dicom
public import KafkaIO
public import Imaging
public import Wire

/// xray.raw → xray.decoded: PNG, JPEG or DICOM to 8-bit gray at a bounded working resolution.
public struct DecoderStage: Stage {
    public let name = "decoder"
    public let inputTopic: String
    let outputTopic: String
    let decoder: RadiographDecoder

    public init(topics: TopicCatalog, limits: DecodeLimits = DecodeLimits()) {
        inputTopic = topics.raw
        outputTopic = topics.decoded
        decoder = RadiographDecoder(limits: limits)
    }

    public func process(_ record: KafkaRecord) throws -> [OutgoingRecord] {
        let id = try record.imageID()
        let (image, source) = try decoder.decode(record.value, contentType: record.headers.text(HeaderName.contentType))
        let decoded = DecodedImage(width: image.width, height: image.height, pixels: image.pixels,
                                   originalWidth: source.width, originalHeight: source.height,
                                   originalBitDepth: source.bitDepth, originalChannels: source.channels)
        return [record.passedOn(to: outputTopic, imageID: id, value: decoded.encoded(), contentType: ContentType.decodedImage,
                                schema: DecodedImage.schemaVersion, timestampHeader: HeaderName.decodedAt)]
    }
}
