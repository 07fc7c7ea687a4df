internal import CRdKafka
import Logging

/// Owns one `rd_kafka_t` handle and frees it in `deinit`. Every librdkafka call on a handle
/// goes through `pointer`, which never leaves this module. librdkafka's handle functions are
/// thread-safe; which thread runs callbacks is decided by who polls (see `PollThread`).
final class RDKafkaClient: @unchecked Sendable {
    /// The `rd_kafka_t *`. Valid until deinit.
    let pointer: OpaquePointer

    /// Creates a handle from `properties`; `configure` may add callbacks and the opaque to the
    /// `rd_kafka_conf_t` before librdkafka takes ownership of it.
    init(kind: rd_kafka_type_t, properties: [String: String],
         configure: (OpaquePointer) -> Void) throws {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError.local("CONF", "librdkafka could not make a configuration object (out of memory?)")
        }
        do {
            for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
                try RDKafkaClient.set(conf, key, value)
            }
        } catch {
            rd_kafka_conf_destroy(conf)
            throw error
        }
        configure(conf)
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(kind, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)  // on failure the conf is still ours
            throw KafkaError.local("CLIENT_CREATE_FAILED",
                                   "librdkafka refused the configuration: \(String(nulTerminated: errstr))")
        }
        pointer = handle
    }

    private static func set(_ conf: OpaquePointer, _ key: String, _ value: String) throws {
        var errstr = [CChar](repeating: 0, count: 512)
        if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            throw KafkaError.local("INVALID_CONFIGURATION",
                                   "\(key)=\(value): \(String(nulTerminated: errstr)). Check the -X setting.")
        }
    }

    deinit {
        rd_kafka_destroy(pointer)
    }

    /// The partitions of each named topic, from the cluster's metadata (blocking).
    func partitionCounts(topics: [String]?, timeoutMilliseconds: Int32) throws -> [String: Int] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(pointer, 1, nil, &metadata, timeoutMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md = metadata else {
            throw KafkaError(err, context: "reading cluster metadata")
        }
        defer { rd_kafka_metadata_destroy(md) }
        var counts: [String: Int] = [:]
        for i in 0..<Int(md.pointee.topic_cnt) {
            let t = md.pointee.topics[i]
            guard t.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let name = String(cString: t.topic)
            if topics?.contains(name) ?? true { counts[name] = Int(t.partition_cnt) }
        }
        return counts
    }
}

/// State shared with librdkafka's global callbacks for logs and errors.
protocol RDKafkaCallbackTarget: AnyObject, Sendable {
    var logger: Logger { get }
    /// Holds back repeats of a message while a broker is away.
    var throttle: LogThrottle { get }
    func clientError(_ error: KafkaError)
}

extension RDKafkaCallbackTarget {
    /// Logs `text` at `level` unless a message of kind `key` was logged less than the
    /// throttle's interval ago; says how many were left out since.
    func logThrottled(_ level: Logger.Level, key: String, _ text: String) {
        let (log, suppressed) = throttle.admit(key)
        guard log else { return }
        let note = suppressed > 0 ? " (\(suppressed) more like it in the last \(throttle.interval) not logged)" : ""
        logger.log(level: level, "\(text)\(note)")
    }
}

/// Routes librdkafka's log lines into swift-log; errors and warnings are throttled by their
/// facility (a broker away makes one a second per client). Runs on the thread that polls the
/// handle.
let rdkafkaLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    rk, level, facility, message in
    guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
    guard let target = Unmanaged<AnyObject>.fromOpaque(opaque).takeUnretainedValue() as? any RDKafkaCallbackTarget else { return }
    let kind = facility.map { String(cString: $0) } ?? "?"
    let text = "librdkafka \(kind): \(message.map { String(cString: $0) } ?? "")"
    switch level {
    case ...3: target.logThrottled(.error, key: "log/\(kind)", text)
    case 4: target.logThrottled(.warning, key: "log/\(kind)", text)
    default: target.logger.debug("\(text)")
    }
}

/// Reports client-level errors (brokers down, authentication, fatal idempotence errors).
/// Runs on the thread that polls the handle.
let rdkafkaErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    rk, code, reason, opaque in
    guard let opaque else { return }
    guard let target = Unmanaged<AnyObject>.fromOpaque(opaque).takeUnretainedValue() as? any RDKafkaCallbackTarget else { return }
    let err = rd_kafka_resp_err_t(rawValue: code)
    var error = KafkaError(err, context: reason.map { String(cString: $0) })
    if err == RD_KAFKA_RESP_ERR__FATAL, let rk {
        var buffer = [CChar](repeating: 0, count: 512)
        let fatal = rd_kafka_fatal_error(rk, &buffer, buffer.count)
        error = KafkaError(code: fatal.rawValue, name: String(cString: rd_kafka_err2name(fatal)),
                           message: String(nulTerminated: buffer), isRetriable: false, isFatal: true)
    }
    target.clientError(error)
}

extension RDKafkaClient {
    /// Installs the log and error callbacks and the opaque they receive. The target must
    /// outlive the handle (the owner keeps both).
    static func installCommonCallbacks(_ conf: OpaquePointer, target: any RDKafkaCallbackTarget) {
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(target as AnyObject).toOpaque())
        rd_kafka_conf_set_log_cb(conf, rdkafkaLogCallback)
        rd_kafka_conf_set_error_cb(conf, rdkafkaErrorCallback)
    }
}

extension String {
    /// Text from a C character buffer that librdkafka filled (up to its first NUL).
    init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
