import Foundation
import Imaging
import Testing
@testable import Dicom

@Suite("De-identification and the gateway's filter", .enabled(if: DicomFixtures.available, "XRAY_DICOM_FIXTURES not set: run Ops/test"))
struct DeidentifierTests {
    let deidentifier: Deidentifier

    init() throws { deidentifier = Deidentifier(pseudonyms: try Pseudonymiser(key: Array("a site secret of some length".utf8))) }

    @Test("no identifier survives, in any transfer syntax; the image renders the same; the object is marked and reads back")
    func identifiersGoImageStays() throws {
        let manifest = try #require(DicomFixtures.manifest)
        for image in manifest.images {
            let bytes = try DicomFixtures.bytes(image.file)
            let original = try DicomObject(bytes: bytes)
            let originalUIDs = [DicomTag.studyInstanceUID, .seriesInstanceUID, .sopInstanceUID].compactMap { original[$0] }
            let before = try original.renderGrey8(maxPixels: 1 << 24).image
            let result = try deidentifier.deidentify(original)
            let written: [UInt8]
            do {
                written = try original.encoded()
            } catch {
                Issue.record("\(image.name): \(error)")
                continue
            }
            let text = String(decoding: written, as: UTF8.self)
            for identifier in manifest.identifiers + originalUIDs {
                #expect(!text.contains(identifier), "\(image.name): \(identifier) is still in the object")
            }
            let reread = try DicomObject(bytes: written)
            #expect(reread.transferSyntax == original.transferSyntax, "\(image.name): written in the syntax it came in")
            #expect(try reread.renderGrey8(maxPixels: 1 << 24).image == before, "\(image.name): the pixels are untouched")
            #expect(reread[.patientIdentityRemoved] == "YES" && reread[.deidentificationMethod] == Deidentifier.method)
            #expect(reread[.patientID] == result.patient && reread[.patientName] == result.patient)
            #expect(reread[.sopInstanceUID] == result.instance && result.instance?.hasPrefix("2.25.") == true)
            #expect(reread.tags.allSatisfy { !$0.isPrivate })
            for gone in [DicomTag.patientBirthDate, .accessionNumber, .institutionName, .referringPhysicianName, .studyDate, .acquisitionDate,
                         .patientSex, DicomTag(0x0010, 0x1000), DicomTag(0x0020, 0x4000), DicomTag(0x0008, 0x1030)] {
                #expect(reread[gone] == nil, "\(image.name): \(gone) is still there")
            }
            #expect(reread[.modality] != nil && reread[.viewPosition] != nil && reread[.bodyPartExamined] == "CHEST")
        }
    }

    @Test("pseudonyms are stable for a key, differ between keys, and keep the same patient together")
    func pseudonymsAreKeyed() throws {
        let a = try Pseudonymiser(key: Array("key number one, 1234".utf8)), b = try Pseudonymiser(key: Array("key number two, 1234".utf8))
        #expect(a.uid("1.2.3.4") == a.uid("1.2.3.4") && a.uid("1.2.3.4") != b.uid("1.2.3.4") && a.uid("1.2.3.4") != a.uid("1.2.3.5"))
        #expect(a.patient("MRN-1") == a.patient("MRN-1") && a.patient("MRN-1") != b.patient("MRN-1"))
        let uid = a.uid("1.2.840.113619.2.55.3.604688119.969.1268071029.320")
        #expect(uid.count <= 64 && uid.allSatisfy { $0.isNumber || $0 == "." } && !uid.contains(".0"))
        #expect(a.patient("MRN-1").count == 21)
    }

    @Test("the key comes from a file or the environment, is long enough, and its absence says what to do")
    func keyLoading() throws {
        #expect(throws: PseudonymKeyError.missing("XRAY_PSEUDONYM_KEY")) { try Pseudonymiser.load(file: nil, environment: "XRAY_PSEUDONYM_KEY", environment: [:]) }
        #expect(throws: PseudonymKeyError.tooShort(5)) { try Pseudonymiser.load(file: nil, environment: "K", environment: ["K": "short"]) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString.prefix(6))")
        try Data("0123456789abcdef0123\n".utf8).write(to: file)
        let fromFile = try Pseudonymiser.load(file: file.path, environment: "K", environment: [:])
        let fromEnvironment = try Pseudonymiser.load(file: nil, environment: "K", environment: ["K": "0123456789abcdef0123"])
        #expect(fromFile.uid("1.2") == fromEnvironment.uid("1.2"), "a trailing newline is not part of the key")
        #expect(PseudonymKeyError.missing("XRAY_PSEUDONYM_KEY").description.contains("--key-file"))
    }

    @Test("the filter publishes frontal CR/DX chest images and says why it skips a CT, a lateral, a burned-in image")
    func acceptance() throws {
        let manifest = try #require(DicomFixtures.manifest)
        let filter = DicomAcceptance()
        for image in manifest.images {
            #expect(filter.refusal(DicomStudyInfo(try DicomObject(bytes: try DicomFixtures.bytes(image.file)))) == nil, "\(image.name)")
        }
        for skipped in manifest.skipped {
            let refusal = filter.refusal(DicomStudyInfo(try DicomObject(bytes: try DicomFixtures.bytes(skipped.file))))
            #expect(refusal?.detail.contains(skipped.says) == true, "\(skipped.file): \(String(describing: refusal))")
        }
        var info = DicomStudyInfo(try DicomObject(bytes: try DicomFixtures.bytes(manifest.images[0].file)))
        info.viewPosition = nil
        #expect(filter.refusal(info)?.reason == "view")
        var lenient = filter
        lenient.acceptMissingView = true
        #expect(lenient.refusal(info) == nil)
        info.bodyPart = "KNEE"
        #expect(lenient.refusal(info)?.reason == "body-part")
    }

    @Test("acquisition date and time: DT with an offset, DA+TM, the timezone attribute; malformed values give none")
    func acquisitionTimes() {
        let t = DicomStudyInfo.epochMilliseconds
        #expect(t("20261130101642.25", nil) == 1_796_033_802_250)
        #expect(t("20261130101642.25+0100", nil) == 1_796_030_202_250)  // an hour ahead of UTC: an hour earlier
        #expect(t("20261130101642", "-0500") == 1_796_051_802_000)
        #expect(t("20261130", nil) == 1_795_996_800_000)
        for bad in ["", "2026", "20261330", "20261130256000", "2026113x", "20261130101642.x5", "99999999999999999999"] {
            #expect(t(bad, nil) == nil, "\(bad)")
        }
    }
}
