import Foundation
import Synchronization

/// The site's way back from pseudonyms to patients: a local file of JSON lines
/// (`{"pseudonym": ..., "original": ...}`), readable by its owner only, appended once per new
/// pseudonym. It stays on the gateway's host; nothing of it goes to a topic.
public final class ReidentificationMap: Sendable {
    private let path: String
    private let written = Mutex<Set<String>>([])

    /// Opens (creating with mode 0600) the map at `path`, reading the pseudonyms already in it.
    public init(path: String) throws {
        self.path = path
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            guard fm.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let known = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])?["pseudonym"]
        } ?? []
        written.withLock { $0 = Set(known) }
    }

    /// Appends the pairs not yet in the file.
    public func record(_ originals: [String: String]) throws {
        try written.withLock { written in
            let new = originals.filter { !written.contains($0.key) }.sorted { $0.key < $1.key }
            guard !new.isEmpty else { return }
            var text = ""
            for (pseudonym, original) in new {
                let data = try JSONSerialization.data(withJSONObject: ["pseudonym": pseudonym, "original": original], options: [.sortedKeys])
                text += String(decoding: data, as: UTF8.self) + "\n"
            }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
            written.formUnion(new.map(\.key))
        }
    }
}
