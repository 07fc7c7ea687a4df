import Crypto
import Foundation

/// Stable pseudonyms from a secret key (HMAC-SHA-256): the same UID or patient ID gives the
/// same pseudonym on every study and every gateway that holds the key, and nobody without the
/// key can go back or even test a guess.
public struct Pseudonymiser: Sendable {
    private let key: [UInt8]

    /// The shortest key accepted, in bytes.
    public static let minimumKeyBytes = 16

    /// Throws when the key is shorter than `minimumKeyBytes`.
    public init(key: [UInt8]) throws(PseudonymKeyError) {
        guard key.count >= Self.minimumKeyBytes else { throw .tooShort(key.count) }
        self.key = key
    }

    /// The key from a file (its bytes, a trailing newline dropped) or an environment variable,
    /// never a command-line argument (which `ps` shows to every user of the host).
    public static func load(file: String?, environment variable: String,
                            environment: [String: String]? = nil) throws(PseudonymKeyError) -> Pseudonymiser {
        let environment = environment ?? ProcessInfo.processInfo.environment
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw .unreadable(file) }
            var bytes = [UInt8](data)
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            return try Pseudonymiser(key: bytes)
        }
        guard let text = environment[variable], !text.isEmpty else { throw .missing(variable) }
        return try Pseudonymiser(key: Array(text.utf8))
    }

    private func mac(_ domain: String, _ value: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array("\(domain)\u{0}\(value)".utf8), using: SymmetricKey(data: key)))
    }

    /// A UID in the 2.25 root (a UUID-derived UID, PS3.5 B.2): 128 bits of the MAC as a decimal.
    public func uid(_ original: String) -> String {
        let bytes = mac("uid", original)
        var value: UInt128 = 0
        for byte in bytes.prefix(16) { value = value << 8 | UInt128(byte) }
        value &= ~(UInt128(1) << 127)  // 2.25 UIDs are at most 39 digits; keep it well inside 64 characters
        return "2.25.\(value)"
    }

    /// A patient pseudonym: "ANON-" and 16 hexadecimal digits of the MAC.
    public func patient(_ originalID: String) -> String {
        "ANON-" + mac("patient", originalID).prefix(8).map { String($0, radix: 16, uppercase: true).leftPadded(2) }.joined()
    }
}

/// Why the pseudonym key cannot be used; the gateway and `xray publish` refuse to start.
public enum PseudonymKeyError: Error, CustomStringConvertible, Equatable {
    case missing(String)
    case unreadable(String)
    case tooShort(Int)

    public var description: String {
        switch self {
        case .missing(let variable):
            "no pseudonym key: set \(variable) or pass --key-file FILE (a secret of at least \(Pseudonymiser.minimumKeyBytes) bytes, kept by the site; `head -c 32 /dev/urandom | base64 > FILE` makes one). It is never taken on the command line, where ps shows it"
        case .unreadable(let file):
            "cannot read the pseudonym key file \(file)"
        case .tooShort(let count):
            "the pseudonym key has \(count) bytes; at least \(Pseudonymiser.minimumKeyBytes) are needed"
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
