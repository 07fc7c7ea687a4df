import ArgumentParser
import KafkaIO

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version",
                                                    abstract: "Print the versions of xray and the librdkafka it loaded.")
    func run() throws {
        print("xray 0.1.0")
        print("librdkafka \(Librdkafka.versionString) (needs \(Librdkafka.minimumVersion.major).\(Librdkafka.minimumVersion.minor)+)")
        try Librdkafka.requireMinimumVersion()
    }
}
