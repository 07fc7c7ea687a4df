/// How a model version travels on xray.models (see Topics/xray.models.md): the model file's
/// bytes in chunks, then an announcement naming the version, its manifest, the chunk count and
/// checksums. The announcement comes last, so a version is complete exactly when it arrives
/// and every chunk before it checks out.
public enum ModelVersionRecord {
    /// Record headers on xray.models.
    public enum Header {
        public static let version = "xray.model.version"
        /// `chunk` or `announcement`.
        public static let part = "xray.model.part"
        /// Chunk index, from 0.
        public static let chunk = "xray.model.chunk"
        /// CRC-32 (IEEE, as zlib computes it) of the chunk's value, 8 hex digits.
        public static let crc32 = "xray.model.crc32"
    }

    /// Bytes per chunk: below the topic's 8 MiB limit with room for headers.
    public static let chunkBytes = 4 << 20
}

/// The last record of a version (JSON value).
public struct ModelAnnouncement: Codable, Sendable, Equatable {
    public static let schemaVersion = 1

    public var version: String
    public var manifest: ModelManifest
    /// Chunks before this record, and their total size.
    public var chunks: Int
    public var bytes: Int
    /// CRC-32 of the whole model file, 8 hex digits.
    public var crc32: String
    /// ISO 8601 time of publication.
    public var publishedAt: String

    public init(version: String, manifest: ModelManifest, chunks: Int, bytes: Int, crc32: String, publishedAt: String) {
        self.version = version; self.manifest = manifest; self.chunks = chunks; self.bytes = bytes
        self.crc32 = crc32; self.publishedAt = publishedAt
    }
}
