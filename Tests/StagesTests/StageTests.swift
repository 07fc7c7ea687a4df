import Foundation
import KafkaIO
import Testing
import Wire
@testable import Stages

let datasets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets")

/// The first `normal` NORMAL and then the first `pneumonia` PNEUMONIA files of the Kermany train split.
func kermanyFiles(normal: Int, pneumonia: Int) throws -> [ImageFile] {
    let root = datasets.appendingPathComponent("kermany_pneumonia_224/train")
    return Array(try DatasetScanner.scan([root.appendingPathComponent("NORMAL").path]).prefix(normal)
                 + DatasetScanner.scan([root.appendingPathComponent("PNEUMONIA").path]).prefix(pneumonia))
}

func rawRecord(_ bytes: [UInt8], key: String?, headers: [KafkaHeader] = []) -> KafkaRecord {
    KafkaRecord(topic: "xray.raw", partition: 2, offset: 41, key: key.map { Array($0.utf8) }, value: bytes, headers: headers)
}

@Suite("Stages as pure transforms")
struct StageTests {
    let topics = TopicCatalog()

    @Test("the decoder turns a real PNG record into a decoded-image record, passing headers on")
    func decoder() throws {
        let png = [UInt8](try Data(contentsOf: datasets.appendingPathComponent("nih_cxr14_fullres_starter_subset/images/00000075_000.png")))
        let input = rawRecord(png, key: "00000075_000", headers: [KafkaHeader(HeaderName.labels, "Effusion"),
                                                                 KafkaHeader(HeaderName.contentType, ContentType.png)])
        let outputs = try DecoderStage(topics: topics).process(input)
        #expect(outputs.count == 1)
        let out = outputs[0]
        #expect(out.topic == "xray.decoded" && out.key == Array("00000075_000".utf8))
        #expect(try DecodedImage(decoding: out.value).width == 1024)
        #expect(out.headers.text(HeaderName.labels) == "Effusion")
        #expect(out.headers.text(HeaderName.contentType) == ContentType.decodedImage)
        #expect(out.headers.filter { $0.name == HeaderName.contentType }.count == 1)
        #expect(out.headers.text(HeaderName.decodedAt) != nil)

        let tensors = try PreprocessorStage(topics: topics).process(
            KafkaRecord(topic: "xray.decoded", partition: 0, offset: 0, key: out.key, value: out.value, headers: out.headers))
        #expect(try Tensor(decoding: tensors[0].value).shape == [3, 224, 224])
        #expect(tensors[0].headers.text(HeaderName.labels) == "Effusion")
    }

    @Test("the decoder reads DICOM: a real JPEG baseline CR, an old file known only by its content type; a truncated one is refused as corrupt DICOM")
    func decoderReadsDicom() throws {
        let samples = datasets.appendingPathComponent("dicom_samples")
        let cr = [UInt8](try Data(contentsOf: samples.appendingPathComponent("torchxrayvision_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm")))
        let out = try DecoderStage(topics: topics).process(rawRecord(cr, key: "siim", headers: [KafkaHeader(HeaderName.contentType, ContentType.dicom)]))
        let decoded = try DecodedImage(decoding: try #require(out.first).value)
        #expect(decoded.width == 1024 && decoded.originalWidth == 1024 && decoded.originalBitDepth == 8)
        let old = [UInt8](try Data(contentsOf: samples.appendingPathComponent("fo-dicom_CR-MONO1-10-chest")))
        #expect(throws: (any Error).self) { try DecoderStage(topics: topics).process(rawRecord(old, key: "old")) }  // no type, no DICM: unknown
        let known = try DecoderStage(topics: topics).process(rawRecord(old, key: "old", headers: [KafkaHeader(HeaderName.contentType, ContentType.dicom)]))
        #expect(try DecodedImage(decoding: try #require(known.first).value).originalBitDepth == 10)
        do {
            _ = try DecoderStage(topics: topics).process(rawRecord(Array(cr.prefix(cr.count / 3)), key: "cut"))
            Issue.record("a truncated DICOM object decoded")
        } catch {
            #expect(["corrupt-dicom", "corrupt-image"].contains(faultCode(error)), "\(error)")
        }
    }

    @Test("records without an image id, or with bad bytes, are refused with a reason")
    func refusals() throws {
        #expect(throws: BadInput.self) { try DecoderStage(topics: topics).process(rawRecord([1, 2], key: nil)) }
        #expect(throws: (any Error).self) { try DecoderStage(topics: topics).process(rawRecord([1, 2], key: "x")) }
        #expect(throws: WireError.self) { try PreprocessorStage(topics: topics).process(rawRecord([1, 2], key: "x")) }
        #expect(throws: BadInput.self) {
            try PreprocessorStage(topics: topics, spec: PreprocessSpec(resize: 10, crop: 20, channels: 1, mean: [0], std: [1]))
        }
    }

    @Test("a dead letter keeps the original key, value and headers and says who refused it, why and where")
    func deadLetter() {
        let input = rawRecord([9, 9, 9], key: "k", headers: [KafkaHeader("a", "b")])
        let letter = DeadLetter.record(for: input, stage: "decoder", reason: "bad", code: "malformed", topic: "xray.deadletter")
        #expect(letter.topic == "xray.deadletter" && letter.key == Array("k".utf8) && letter.value == [9, 9, 9])
        #expect(letter.headers.text("a") == "b")
        #expect(letter.headers.text(HeaderName.DeadLetter.error) == "bad")
        #expect(letter.headers.text(HeaderName.DeadLetter.partition) == "2")
        #expect(letter.headers.text(HeaderName.DeadLetter.offset) == "41")
    }

    @Test("NIH files are labelled from the NIH table; Kermany files from their folder")
    func labelling() throws {
        let table = try NIHLabelTable(csv: """
            Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age
            00000001_000.png,Cardiomegaly|Emphysema,0,1,57
            00000002_000.png,No Finding,0,2,80
            """)
        #expect(table["00000001_000.png"] == .init(labels: ["Cardiomegaly", "Emphysema"], patientID: "1"))
        #expect(DatasetScanner.label("/x/00000002_000.png", nihLabels: table).metadata.labels == [])
        #expect(DatasetScanner.label("/x/00000003_000.png", nihLabels: table).metadata.labels == nil)
        let sick = DatasetScanner.label("/d/train/PNEUMONIA/person1_bacteria_1.jpeg", nihLabels: nil).metadata
        #expect(sick.labels == ["Pneumonia"] && sick.patientID == "person1" && sick.imageID == "person1_bacteria_1")
        #expect(DatasetScanner.label("/d/NORMAL/NORMAL2-IM-1427-0001.jpeg", nihLabels: nil).metadata.patientID == "NORMAL2-IM-1427")
        #expect(throws: BadInput.self) { try NIHLabelTable(csv: "a,b\n1,2") }

        let kermany = try DatasetScanner.scan([datasets.appendingPathComponent("kermany_pneumonia_224/train").path])
        #expect(kermany.count == 5216)
        #expect(kermany.filter { $0.metadata.labels == ["Pneumonia"] }.count == 3875)
    }

    @Test("the publisher's record carries id, source, acquisition time, labels, content type and a trace")
    func publisherRecord() {
        let file = ImageFile(path: "/x.png", metadata: ImageMetadata(imageID: "x", labels: ["Mass"]))
        let record = ModalityPublisher(topic: "xray.raw", source: "ct-1").record(
            for: file, bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], now: 1234)
        #expect(record.key == Array("x".utf8))
        #expect(record.headers.text(HeaderName.source) == "ct-1")
        #expect(record.headers.text(HeaderName.acquiredAt) == "1234")
        #expect(record.headers.text(HeaderName.labels) == "Mass")
        #expect(record.headers.text(HeaderName.contentType) == ContentType.png)
        #expect(record.headers.text(HeaderName.traceparent)?.count == 55)
    }

    @Test("tail summarises binary values and shows JSON as is")
    func describer() {
        #expect(RecordDescriber.summarize(DecodedImage(width: 2, height: 1, pixels: [0, 1]).encoded()).hasPrefix("decoded image 2x1"))
        #expect(RecordDescriber.summarize(Tensor(shape: [1, 2], values: [0, 1]).encoded()).hasPrefix("tensor float32 [1, 2]"))
        #expect(RecordDescriber.summarize(Array("{\"a\":1}".utf8)) == "{\"a\":1}")
    }
}

@Suite("The reading-room line")
struct CaseViewTests {
    @Test("latency runs from acquisition, or from the gateway's receipt when the study was taken long before")
    func ages() {
        let direct = StageTimes(acquired: 1_000, decoded: 1_090, preprocessed: 1_130, scored: 1_310)
        #expect(CaseView.age(direct, now: 2_200) == "acquired 1.2 s ago, scored in 310 ms (decode 90, preprocess 40, score 180)")
        let resent = StageTimes(acquired: 1_000, received: 5 * 86_400_000, decoded: 5 * 86_400_000 + 90, preprocessed: 5 * 86_400_000 + 130,
                                scored: 5 * 86_400_000 + 310)
        #expect(CaseView.age(resent, now: 5 * 86_400_000 + 2_100)
                == "acquired 5 d ago, received 2.1 s ago, scored in 310 ms (decode 90, preprocess 40, score 180)")
    }
}
