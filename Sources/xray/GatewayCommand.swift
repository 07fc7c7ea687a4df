import ArgumentParser
import Dicom
import Foundation
import KafkaIO
import ServiceLifecycle
import Stages
import Wire

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "The DICOM gateway: receive chest X-rays by C-STORE, de-identify them, publish them to xray.raw.",
        discussion: """
            Modalities and PACS send to AE title --ae-title on --port (storescu -aec XRAYSTREAM HOST PORT FILES), \
            or with --stow-port by DICOMweb STOW-RS (POST /studies, multipart/related; type="application/dicom"). \
            Only frontal chest radiographs are published (modality CR or DX, body part CHEST or absent, view PA \
            or AP); other objects are acknowledged, counted and logged. Every published object is de-identified \
            first (PS3.15 Annex E basic profile as an allow-list; UIDs and patient ID replaced by HMAC-SHA-256 \
            pseudonyms under the site's key). The sender's C-STORE success waits for the broker's \
            acknowledgement; with the broker away it gets "out of resources" (0xA700) and retries.

            The pseudonym key comes from --key-file or XRAY_PSEUDONYM_KEY (at least 16 bytes), never from the \
            command line; without one the gateway does not start. Burned-in text in the pixels is not removed: \
            images flagged BurnedInAnnotation=YES are refused unless --allow-burned-in.
            """)

    @OptionGroup var kafka: KafkaOptions

    @Option(help: "The gateway's own AE title.") var aeTitle = "XRAYSTREAM"
    @Option(help: "The site (hospital) named in each record's xray.site header: the evaluator measures and gates per site, and the scorer uses the site's thresholds. Letters, digits, _ and -, at most 64.")
    var site: String?
    @Option(help: "The DICOM port to listen on.") var port: Int = 11112
    @Option(help: ArgumentHelp("Calling AE titles allowed to send (repeatable); none allows any.", valueName: "ae-title"))
    var caller: [String] = []
    @OptionGroup var key: PseudonymKeyOptions
    @Option(help: "Append pseudonym → original pairs to this local file (mode 0600), the site's way back. Never sent to a topic.")
    var reidentificationMap: String?
    @Option(help: ArgumentHelp("Modalities published (repeatable).", valueName: "modality")) var modality: [String] = ["CR", "DX"]
    @Option(help: ArgumentHelp("Body parts published (repeatable); an absent body part is accepted.", valueName: "part"))
    var bodyPart: [String] = ["CHEST"]
    @Option(help: ArgumentHelp("View positions published (repeatable).", valueName: "view")) var view: [String] = ["PA", "AP"]
    @Flag(help: "Publish objects that give no view position.") var acceptMissingView = false
    @Flag(help: "Publish images flagged BurnedInAnnotation=YES (their burned-in text is NOT removed).") var allowBurnedIn = false
    @Option(help: "Largest object accepted, in bytes.") var maxBytes: Int = 32 << 20
    @Option(help: "Seconds to wait for the broker's acknowledgement before answering out of resources.") var ackTimeoutS: Double = 30
    @Option(help: "Also accept DICOMweb STOW-RS (POST /studies, multipart/related) on this HTTP port.") var stowPort: Int?
    @Option(help: "Address the STOW-RS server binds (it has no TLS or authentication of its own: widen it behind the site's proxy).")
    var stowHost: String = "127.0.0.1"
    @Option(help: "Largest STOW-RS request accepted, in bytes.") var stowMaxBytes: Int = 256 << 20
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics.") var metricsPort: Int?
    @Option(help: "Address the metrics server binds.") var metricsHost: String = "0.0.0.0"

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535") }
        guard !aeTitle.isEmpty, aeTitle.count <= 16 else { throw ValidationError("--ae-title must be 1 to 16 characters") }
        guard ackTimeoutS >= 1, ackTimeoutS <= 600 else { throw ValidationError("--ack-timeout-s must be in [1, 600]") }
        guard maxBytes > 0 else { throw ValidationError("--max-bytes must be positive") }
        if let site, ImageMetadata.validSite(site) == nil { throw ValidationError("--site must be 1 to 64 letters, digits, _ or -") }
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be in 0...65535") }
        if let stowPort, !(1...65535).contains(stowPort) { throw ValidationError("--stow-port must be in 1...65535") }
        guard stowMaxBytes > 0 else { throw ValidationError("--stow-max-bytes must be positive") }
    }

    func run() async throws {
        let logger = kafka.logger("xray.gateway")
        let pseudonyms = try key.pseudonymiser()
        var acceptance = DicomAcceptance()
        acceptance.modalities = Set(modality.map { $0.uppercased() })
        acceptance.bodyParts = Set(bodyPart.map { $0.uppercased() })
        acceptance.viewPositions = Set(view.map { $0.uppercased() })
        acceptance.acceptMissingView = acceptMissingView
        acceptance.allowBurnedIn = allowBurnedIn
        let map = try reidentificationMap.map { try ReidentificationMap(path: $0) }
        let server = metricsPort.map { StageOptions.prometheusServer(host: metricsHost, port: $0, logger: logger) }
        var producerConfiguration = ProducerConfiguration(kafka: try kafka.kafka(clientID: "xray-gateway"))
        producerConfiguration.deliveryTimeoutMilliseconds = Int(ackTimeoutS * 1000)
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        var intake = DicomIntake(topic: kafka.topics.raw, acceptance: acceptance, deidentifier: Deidentifier(pseudonyms: pseudonyms),
                                 maxBytes: maxBytes)
        intake.site = site
        let gateway = DicomGateway(store: .init(aeTitle: aeTitle, port: UInt16(port), callers: caller),
                                   stow: stowPort.map { (stowHost, $0, stowMaxBytes) }, intake: intake,
                                   producer: producer, reidentificationMap: map, logger: logger)
        let services: [any Service] = [gateway] + (server.map { [$0] } ?? [])
        try await ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }
}
