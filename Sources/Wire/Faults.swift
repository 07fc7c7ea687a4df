// Whose fault an error is decides what happens next, and each kind has its own type:
//
// - `BadInput`: the record (or file) is at fault. A stage dead-letters it with the reason and
//   moves on; a command prints the reason and exits 1. `WireError`, `ImagingError` and
//   `EngineError` met while reading a record are bad input too.
// - `ConfigurationError`: the operator's settings are at fault. The process refuses to start
//   and names the flag to change.
// - `CorruptState`: something the system wrote and relies on (a model version, a checkpoint)
//   is unusable. It is refused, the last good one stays in force, and the reason is logged.

/// A record or file refused, with a reason an operator can act on and a short code for
/// metrics (`xray_records_dead_lettered_total{reason}`) and the `xray.dlq.reason` header.
public struct BadInput: Error, CustomStringConvertible {
    public var description: String
    /// A short, stable name of the kind of fault: `malformed`, `non-finite`, `wrong-shape`...
    public var code: String

    public init(_ description: String, code: String = "malformed") {
        self.description = description
        self.code = code
    }
}

/// Settings that cannot work: the process refuses to start and says which flag to change.
public struct ConfigurationError: Error, CustomStringConvertible {
    /// The command-line flag (or environment variable) at fault, if one is.
    public var flag: String?
    public var message: String

    public init(_ message: String, flag: String? = nil) {
        self.flag = flag
        self.message = message
    }

    public var description: String { flag.map { "\($0): \(message)" } ?? message }
}

/// State the system wrote and relies on is unusable (a model version's weights, a
/// checkpoint): refused, with the previous good one kept in force.
public struct CorruptState: Error, CustomStringConvertible {
    /// What was refused: "model version v3", "checkpoint of run r shard 2".
    public var what: String
    public var reason: String

    public init(_ what: String, _ reason: String) {
        self.what = what
        self.reason = reason
    }

    public var description: String { "\(what) is unusable: \(reason)" }
}
