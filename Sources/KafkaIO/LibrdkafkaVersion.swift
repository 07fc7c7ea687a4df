internal import CRdKafka

/// The librdkafka the process loaded at run time (not the headers it was built against).
public enum Librdkafka {
    /// The oldest librdkafka known to talk to the brokers we target; Debian's 2.0.2 cannot
    /// parse the ApiVersion reply of newer brokers such as Tansu.
    public static let minimumVersion = (major: 2, minor: 10)

    /// `rd_kafka_version_str()`, for example "2.16.1".
    public static var versionString: String { String(cString: rd_kafka_version_str()) }

    /// (major, minor, revision) decoded from `rd_kafka_version()` (hex MM.mm.rr.xx).
    public static var version: (major: Int, minor: Int, revision: Int) {
        let v = Int(rd_kafka_version())
        return ((v >> 24) & 0xff, (v >> 16) & 0xff, (v >> 8) & 0xff)
    }

    /// Throws an error that says what to run when the loaded librdkafka is too old.
    public static func requireMinimumVersion() throws {
        let v = version
        if (v.major, v.minor) < (minimumVersion.major, minimumVersion.minor) {
            throw KafkaError.local("LIBRDKAFKA_TOO_OLD", """
                librdkafka \(versionString) was loaded, but XRayStream needs \
                \(minimumVersion.major).\(minimumVersion.minor) or newer. Run Ops/setup, which \
                installs librdkafka 2.16 into .deps/lib, and rebuild; or point LD_LIBRARY_PATH at \
                a folder holding a newer librdkafka.so.1.
                """)
        }
    }
}
