/// What went wrong loading or saving weights, and what to do about it.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    /// A weight file is damaged or not the format it claims.
    case malformed(String)
    /// The file is valid but does not fit this network.
    case incompatible(String)
    /// A feature of the file this engine does not read.
    case unsupported(String)

    public var description: String {
        switch self {
        case .malformed(let s): "malformed weight file: \(s)"
        case .incompatible(let s): "weights do not fit: \(s)"
        case .unsupported(let s): "unsupported: \(s)"
        }
    }
}
