import ArgumentParser
import Dicom
import Foundation
import KafkaIO
import Stages
import Wire

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "The modality simulator: publish image files or a labelled dataset to xray.raw.",
        discussion: """
            PATH may be image files or folders (searched recursively for .png, .jpg, .jpeg, .dcm). \
            NIH ChestX-ray14 PNGs are labelled from --labels (the NIH Data_Entry CSV); files in \
            NORMAL/ or PNEUMONIA/ folders (the Kermany layout) are labelled by folder. DICOM files are \
            filtered and de-identified exactly as `xray gateway` does (frontal CR/DX chest images only; \
            identifiers removed, UIDs and patient ID pseudonymised with the key from --key-file or \
            XRAY_PSEUDONYM_KEY, which DICOM files require).
            """)

    @OptionGroup var kafka: KafkaOptions
    @Argument(help: "Image files or folders.") var paths: [String]
    @Option(help: "The NIH label table (Data_Entry_2017*.csv) for NIH images.") var labels: String?
    @Option(help: "Images per second (default: as fast as the broker acknowledges).") var rate: Double?
    @Option(help: "Publish at most this many images.") var limit: Int?
    @Option(help: "The source named in each record's xray.source header.") var source: String = "xray-publish"
    @Option(help: "The site (hospital) named in each record's xray.site header: the evaluator measures and gates per site, and the scorer uses the site's thresholds. Letters, digits, _ and -, at most 64.")
    var site: String?
    @Flag(help: "Shuffle the files (with --seed) before --limit applies.") var shuffle = false
    @Option(help: "Publish only the images of the patients a patient-wise split of share --validation holds out (held-out) or trains on (training).")
    var only: String?
    @Option(help: "The split's share of held-out patients, for --only (the trainers' and evaluator's --validation).") var validation: Double = 0.15
    @Option(help: "Seed for --shuffle.") var seed: UInt64 = 1
    @OptionGroup var key: PseudonymKeyOptions
    @Flag(help: "For DICOM files: publish objects that give no view position.") var acceptMissingView = false

    func validate() throws {
        if let rate, !(rate >= 0.001 && rate <= 1_000_000) { throw ValidationError("--rate must be in [0.001, 1000000] images per second") }
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if let site, ImageMetadata.validSite(site) == nil { throw ValidationError("--site must be 1 to 64 letters, digits, _ or -") }
        if let only, !["held-out", "training"].contains(only) { throw ValidationError("--only takes held-out or training") }
        guard validation > 0, validation < 1 else { throw ValidationError("--validation must be in (0, 1)") }
    }

    func run() async throws {
        let logger = kafka.logger("xray.publish")
        let table = try labels.map { path -> NIHLabelTable in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("cannot read the label table \(path)")
            }
            return try NIHLabelTable(csv: text)
        }
        var files = try DatasetScanner.scan(paths, nihLabels: table)
        if shuffle {
            var generator = SplitMix64(seed: seed)
            files.shuffle(using: &generator)
        }
        if let only {
            let (training, heldOut) = PatientSplit(validationFraction: validation).split(files)
            files = only == "held-out" ? heldOut : training
        }
        if let limit { files = Array(files.prefix(limit)) }
        guard !files.isEmpty else { throw ValidationError("no image files found under \(paths)") }

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: try kafka.kafka(clientID: "xray-publish")),
                                         logger: logger)
        var publisher = ModalityPublisher(topic: kafka.topics.raw, source: source, rate: rate)
        publisher.site = site
        if files.contains(where: { $0.path.lowercased().hasSuffix(".dcm") }) {
            var acceptance = DicomAcceptance()
            acceptance.acceptMissingView = acceptMissingView
            publisher.dicom = DicomIntake(topic: kafka.topics.raw, acceptance: acceptance, deidentifier: Deidentifier(pseudonyms: try key.pseudonymiser()))
            publisher.dicom?.site = site
        }
        let bar = ProgressBar(enabled: isatty(STDERR_FILENO) == 1)
        let summary = try await publisher.publish(files, with: producer) { done, total in bar.show(done, total) }
        bar.finish()
        await producer.close()

        let mb = Double(summary.bytes) / 1_048_576
        print(String(format: "published %d images (%d labelled) to %@: %.1f MB in %.2f s, %.1f images/s, %.1f MB/s",
                     summary.published, summary.labelled, kafka.topics.raw, mb, summary.seconds,
                     Double(summary.published) / max(summary.seconds, 1e-9), mb / max(summary.seconds, 1e-9)))
        for skip in summary.skipped { print("not published: \(skip.path): \(skip.reason)") }
        for failure in summary.failed { print("failed: \(failure.path): \(failure.reason)") }
        if !summary.failed.isEmpty { throw ExitCode(1) }
    }
}

/// A deterministic generator for --shuffle.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
