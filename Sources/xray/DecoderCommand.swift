import ArgumentParser
import Imaging
import Stages

struct DecoderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decoder",
        abstract: "Decode PNG/JPEG from xray.raw to 8-bit gray on xray.decoded; bad input to xray.deadletter.")

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var stage: StageOptions

    @Option(help: "Largest encoded image accepted, in bytes.")
    var maxBytes: Int = DecodeLimits().maxEncodedBytes
    @Option(help: "Largest width*height accepted (decompression-bomb guard).")
    var maxPixels: Int = DecodeLimits().maxPixels
    @Option(help: "Working resolution: larger images are downscaled so their longer side is this.")
    var maxSide: Int = DecodeLimits().maxSide

    func run() async throws {
        let limits = DecodeLimits(maxEncodedBytes: maxBytes, maxPixels: maxPixels, maxSide: maxSide)
        try await stage.run(DecoderStage(topics: kafka.topics, limits: limits), kafka: kafka)
    }
}
