import Testing
@testable import Wire

@Suite("Record formats")
struct FormatTests {
    @Test("a decoded image round-trips, with the documented 28-byte header")
    func decodedImage() throws {
        let image = DecodedImage(width: 3, height: 2, pixels: [1, 2, 3, 4, 5, 6], originalWidth: 30, originalHeight: 20,
                                 originalBitDepth: 16, originalChannels: 4)
        let bytes = image.encoded()
        #expect(bytes.count == 28 + 6)
        #expect(Array(bytes[0..<8]) == [0x58, 0x52, 0x44, 0x49, 1, 0, 1, 0])  // "XRDI", v1, gray8
        #expect(Array(bytes[8..<12]) == [3, 0, 0, 0])
        #expect(try DecodedImage(decoding: bytes) == image)
        #expect(throws: WireError.self) { try DecodedImage(decoding: Array(bytes.dropLast())) }
        #expect(throws: WireError.badMagic("decoded image", expected: "XRDI")) { try DecodedImage(decoding: Array("nope".utf8)) }
        var future = bytes
        future[4] = 9
        #expect(throws: WireError.unsupportedVersion("decoded image", 9)) { try DecodedImage(decoding: future) }
    }

    @Test("a tensor round-trips; its values are little-endian float32 after the shape")
    func tensor() throws {
        let t = Tensor(shape: [2, 1, 2], values: [1, -2, 0.5, 3.25])
        let bytes = t.encoded()
        #expect(bytes.count == 8 + 12 + 16)
        #expect(Array(bytes[0..<8]) == [0x58, 0x52, 0x54, 0x4E, 1, 0, 1, 3])
        #expect(Array(bytes[20..<24]) == [0, 0, 0x80, 0x3F])  // 1.0f
        #expect(try Tensor(decoding: bytes) == t)
        #expect(throws: WireError.self) { try Tensor(decoding: Array(bytes.prefix(22))) }
        #expect(throws: WireError.self) { try Tensor(decoding: Array("XRDI".utf8) + bytes.dropFirst(4)) }
    }

    @Test("image metadata round-trips through headers; empty labels mean 'no finding'")
    func metadata() {
        let m = ImageMetadata(imageID: "00000001_000", source: "nih", acquiredAt: 1_700_000_000_123,
                              labels: ["Cardiomegaly", "Effusion"], patientID: "1", traceparent: "00-a-b-01")
        let fields = Dictionary(uniqueKeysWithValues: m.headerFields.map { ($0.name, $0.value) })
        #expect(fields[HeaderName.labels] == "Cardiomegaly,Effusion")
        #expect(ImageMetadata(lookup: { fields[$0] }, key: nil) == m)
        #expect(ImageMetadata.parseLabels("") == [])
        #expect(ImageMetadata.parseLabels(" A , B,") == ["A", "B"])
        #expect(ImageMetadata(lookup: { _ in nil }, key: "k")?.labels == nil)
        #expect(ImageMetadata(lookup: { _ in nil }, key: nil) == nil)
    }

    @Test("content types are sniffed from signatures")
    func sniff() {
        #expect(ContentType.sniff([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0]) == ContentType.png)
        #expect(ContentType.sniff([0xFF, 0xD8, 0xFF, 0xE0]) == ContentType.jpeg)
        #expect(ContentType.sniff([UInt8](repeating: 0, count: 128) + Array("DICM".utf8)) == ContentType.dicom)
        #expect(ContentType.sniff(Array("hello".utf8)) == nil)
    }

    @Test("preprocessing specs are validated")
    func preprocessSpec() {
        #expect(PreprocessSpec.imagenet224.problem == nil)
        #expect(PreprocessSpec.imagenet224.outputShape == [3, 224, 224])
        #expect(PreprocessSpec(resize: 200, crop: 224, channels: 1, mean: [0], std: [1]).problem != nil)
        #expect(PreprocessSpec(resize: 256, crop: 224, channels: 3, mean: [0], std: [1]).problem != nil)
        #expect(PreprocessSpec(resize: 256, crop: 224, channels: 1, mean: [0], std: [0]).problem != nil)
    }

    @Test("dead-letter values larger than the topic allows are cut")
    func deadLetterValue() {
        #expect(DeadLetter.value(from: [1, 2, 3]) == ([1, 2, 3], false))
        let huge = [UInt8](repeating: 7, count: TopicCatalog.deadletter.maxRecordBytes)
        let (value, cut) = DeadLetter.value(from: huge)
        #expect(cut && value.count < huge.count)
    }

    @Test("topic names follow the deployment prefix")
    func prefix() {
        #expect(TopicCatalog().raw == "xray.raw")
        #expect(TopicCatalog(prefix: "test1.").deadletter == "test1.xray.deadletter")
        #expect(TopicCatalog(prefix: "test1.").checkpoints == "test1.xray.checkpoints")
        #expect(Set(TopicCatalog.all.map(\.name)).count == 10)
    }
}
