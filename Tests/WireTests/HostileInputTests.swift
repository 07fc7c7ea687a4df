import CheckedArithmetic
import Testing
@testable import Wire

/// Every record format against what a hostile or broken producer can write: each class of bad
/// input gives its own typed error, never a trap.
@Suite("Hostile records")
struct HostileInputTests {
    /// A tensor record with `dims` in its header and `values` after it.
    static func tensorBytes(dims: [UInt32], values: [Float], rank: UInt8? = nil) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.append("XRTN")
        w.append(UInt16(1))
        w.append(UInt8(1))
        w.append(rank ?? UInt8(dims.count))
        for d in dims { w.append(d) }
        for v in values { w.append(v.bitPattern) }
        return w.bytes
    }

    @Test("a tensor truncated at every byte is refused as truncated or short of values")
    func tensorTruncation() throws {
        let bytes = Tensor(shape: [1, 2, 2], values: [1, 2, 3, 4]).encoded()
        for cut in 0..<bytes.count {
            let prefix = Array(bytes.prefix(cut))
            #expect(throws: WireError.self) { try Tensor(decoding: prefix) }
            if cut < 8 + 12 {  // inside the header: truncated (or the magic is cut short)
                #expect(throws: (cut < 4 ? WireError.badMagic("tensor", expected: "XRTN") : WireError.truncated("tensor", needed: Self.fieldEnd(cut), got: cut))) {
                    try Tensor(decoding: prefix)
                }
            } else {
                #expect(throws: WireError.invalid("tensor", "\(cut - 20) value bytes for shape [1, 2, 2], which needs 16")) { try Tensor(decoding: prefix) }
            }
        }
    }

    /// Where the header field that a cut at `cut` falls into ends (4 magic, 2 version, 1 dtype,
    /// 1 rank, then 4 per dimension).
    static func fieldEnd(_ cut: Int) -> Int {
        switch cut {
        case 4..<6: 6
        case 6: 7
        case 7: 8
        default: 8 + ((cut - 8) / 4 + 1) * 4
        }
    }

    @Test("tensor dimensions that multiply past 2^62, or past the record limit, are refused before any allocation")
    func tensorOverflow() {
        let huge = Self.tensorBytes(dims: [UInt32.max, UInt32.max, UInt32.max], values: [])
        #expect(throws: WireError.tooLarge("tensor", "shape [4294967295, 4294967295, 4294967295] holds more than \(Tensor.maxValues) values")) {
            try Tensor(decoding: huge)
        }
        let big = Self.tensorBytes(dims: [3, 4096, 4096], values: [])
        #expect(throws: WireError.self) { try Tensor(decoding: big) }
        let deep = Self.tensorBytes(dims: [UInt32](repeating: 1, count: 9), values: [0])
        #expect(throws: WireError.tooLarge("tensor", "rank 9 is above 8")) { try Tensor(decoding: deep) }
    }

    @Test("a tensor whose length field lies about its values is refused")
    func tensorLyingLength() {
        let short = Self.tensorBytes(dims: [2, 2], values: [1, 2, 3])
        #expect(throws: WireError.invalid("tensor", "12 value bytes for shape [2, 2], which needs 16")) { try Tensor(decoding: short) }
        let long = Self.tensorBytes(dims: [2, 2], values: [1, 2, 3, 4, 5])
        #expect(throws: WireError.invalid("tensor", "20 value bytes for shape [2, 2], which needs 16")) { try Tensor(decoding: long) }
        let rankLies = Self.tensorBytes(dims: [2, 2], values: [1, 2, 3, 4], rank: 3)
        #expect(throws: WireError.self) { try Tensor(decoding: rankLies) }
    }

    @Test("a tensor holding a NaN or an infinity is refused, naming the value")
    func tensorNonFinite() {
        #expect(throws: WireError.nonFinite("tensor", index: 2)) {
            try Tensor(decoding: Self.tensorBytes(dims: [4], values: [0, 1, .nan, 3]))
        }
        #expect(throws: WireError.nonFinite("tensor", index: 0)) {
            try Tensor(decoding: Self.tensorBytes(dims: [1], values: [-.infinity]))
        }
        #expect(WireError.nonFinite("tensor", index: 0).reasonCode == "non-finite")
        let ok = try? Tensor(decoding: Self.tensorBytes(dims: [2], values: [-Float.greatestFiniteMagnitude, 0]))
        #expect(ok?.values.count == 2)
    }

    @Test("a decoded image of 1 x 60,000, of lying size or cut short is refused")
    func decodedImage() {
        func header(_ w: UInt32, _ h: UInt32) -> [UInt8] {
            var b = ByteWriter(capacity: 28)
            b.append("XRDI"); b.append(UInt16(1)); b.append(UInt8(1)); b.append(UInt8(0))
            b.append(w); b.append(h); b.append(w); b.append(h); b.append(UInt8(8)); b.append(UInt8(1)); b.append(UInt16(0))
            return b.bytes
        }
        #expect(throws: WireError.tooLarge("decoded image", "1x60000 has a side over 16384 pixels")) {
            try DecodedImage(decoding: header(1, 60_000) + [UInt8](repeating: 0, count: 60_000))
        }
        #expect(throws: WireError.tooLarge("decoded image", "4294967295x4294967295 has a side over 16384 pixels")) {
            try DecodedImage(decoding: header(.max, .max))
        }
        #expect(throws: WireError.invalid("decoded image", "size 0x5")) { try DecodedImage(decoding: header(0, 5)) }
        #expect(throws: WireError.invalid("decoded image", "3 pixel bytes for 2x2")) { try DecodedImage(decoding: header(2, 2) + [1, 2, 3]) }
        let good = DecodedImage(width: 2, height: 2, pixels: [1, 2, 3, 4]).encoded()
        for cut in 0..<good.count { #expect(throws: WireError.self) { try DecodedImage(decoding: Array(good.prefix(cut))) } }
        #expect(throws: WireError.invalid("decoded image", "pixel format 7 is not 8-bit gray (1)")) {
            var bad = good
            bad[6] = 7
            return try DecodedImage(decoding: bad)
        }
    }

    /// The headers of a valid gradient record, to spoil one at a time.
    static let gradientHeaders: [String: String] = Dictionary(uniqueKeysWithValues: GradientChunkInfo(
        contribution: "c1", trainer: "t", baseVersion: "v0", baseStep: 0, shard: 1, shards: 4, part: .values, index: 0,
        count: 2, start: 100, samples: 16, loss: 0.5, crc32: "00000000").headerFields.map { ($0.name, $0.value) })

    static func gradientInfo(_ changes: [String: String?]) throws -> GradientChunkInfo {
        var headers = gradientHeaders
        for (name, value) in changes { headers[name] = value }
        return try GradientChunkInfo(lookup: { headers[$0] })
    }

    @Test("gradient headers out of range, missing or not finite are refused, naming the header")
    func gradientHeaders() throws {
        typealias H = GradientRecord.Header
        #expect(try Self.gradientInfo([:]).shard == 1)
        let cases: [([String: String?], WireError)] = [
            ([H.shards: "0"], .invalid("gradient", "header \(H.shards) is not an integer in 1...4096")),
            ([H.shards: "99999999999999999999"], .invalid("gradient", "header \(H.shards) is not an integer in 1...4096")),
            ([H.shard: "4"], .invalid("gradient", "shard 4 of 4")),
            ([H.shard: "-1"], .invalid("gradient", "header \(H.shard) is not an integer in 0...4095")),
            ([H.index: "2"], .invalid("gradient", "record 2 of 2")),
            ([H.count: "0"], .invalid("gradient", "header \(H.count) is not an integer in 1...65536")),
            ([H.start: "-5"], .invalid("gradient", "header \(H.start) is not an integer in 0...68719476736")),
            ([H.samples: "0"], .invalid("gradient", "header \(H.samples) is not an integer in 1...1048576")),
            ([H.baseStep: "9223372036854775807"], .invalid("gradient", "header \(H.baseStep) is not an integer in 0...2147483647")),
            ([H.loss: "nan"], .nonFinite("gradient loss", index: 0)),
            ([H.loss: "inf"], .nonFinite("gradient loss", index: 0)),
            ([H.loss: "lots"], .invalid("gradient", "header \(H.loss) is not a number")),
            ([H.part: "weights"], .invalid("gradient", "\(H.part) must be values or state")),
            ([H.trainer: nil], .invalid("gradient", "no \(H.trainer) header")),
            ([H.trainer: String(repeating: "x", count: 2000)], .tooLarge("gradient", "header \(H.trainer) is longer than 1024 bytes")),
        ]
        for (changes, error) in cases {
            #expect(throws: error) { try Self.gradientInfo(changes) }
        }
        #expect(throws: WireError.invalid("shard layout", "0 shards of 10 parameters")) { try ShardLayout.checked(parameterCount: 10, shards: 0) }
        #expect(throws: WireError.self) { try ShardLayout.checked(parameterCount: 10, shards: 11) }
        #expect(try ShardLayout.checked(parameterCount: 10, shards: 3).range(2) == 6..<10)
    }

    static let manifest = ModelManifest(architecture: "small-cnn", labels: ["Pneumonia"],
                                        preprocess: PreprocessSpec(resize: 36, crop: 32, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]),
                                        origin: "test", createdAt: "now")

    @Test("preprocessing and manifests with sizes that would ask for terabytes, or unusable numbers, are refused")
    func manifests() {
        func spec(resize: Int = 256, crop: Int = 224, channels: Int = 1, mean: [Float] = [0.5], std: [Float] = [0.25]) -> String? {
            PreprocessSpec(resize: resize, crop: crop, channels: channels, mean: mean, std: std).problem
        }
        #expect(spec() == nil)
        #expect(spec(resize: 1_000_000, crop: 1_000_000) == "resize 1000000 is above 2048")
        #expect(spec(crop: 1_000_000) == "crop 1000000 is larger than resize 256")
        #expect(spec(resize: 0) == "resize and crop must be positive")
        #expect(spec(channels: 5, mean: [0, 0, 0, 0, 0], std: [1, 1, 1, 1, 1]) != nil)
        #expect(spec(mean: [.nan]) == "mean values must be finite numbers within ±1000")
        #expect(spec(std: [0]) == "std values must be in [0.0001, 1000]")
        #expect(spec(std: [.infinity]) == "std values must be in [0.0001, 1000]")

        #expect(Self.manifest.problem == nil)
        var m = Self.manifest
        m.labels = ["Pneumonia,Effusion"]
        #expect(m.problem?.contains("without commas") == true)
        m.labels = (0..<1001).map { "L\($0)" }
        #expect(m.problem == "1001 labels; at most 1000")
        m = Self.manifest
        m.metrics = ["auc.mean": .nan]
        #expect(m.problem == "metric auc.mean is not a finite number")
        m = Self.manifest
        m.input = [3, 1_000_000, 1_000_000]
        #expect(m.problem != nil)
    }

    @Test("announcements whose counts lie are refused before anything is allocated for them")
    func announcements() {
        var a = ModelAnnouncement(version: "v1", manifest: Self.manifest, chunks: 1, bytes: 10, crc32: "00000000", publishedAt: "now")
        #expect(a.problem == nil)
        a.chunks = 1_000_000_000
        #expect(a.problem == "1000000000 chunks; at most 1024")
        a.chunks = -1
        #expect(a.problem == "-1 chunks; at most 1024")
        a.chunks = 1; a.bytes = .max
        #expect(a.problem != nil)
        a.bytes = 1; a.step = -3
        #expect(a.problem == "step -3 is negative")
        a.step = nil; a.version = ""
        #expect(a.problem == "version: an empty name")

        var s = ShardAnnouncement(version: "r-000001", run: "r", step: 1, base: "v0", shard: 0, shards: 2, start: 0, count: 10,
                                  chunks: 1, crc32: "00000000", manifest: Self.manifest, publishedAt: "now")
        #expect(s.problem == nil)
        s.shards = 0
        #expect(s.problem == "shard 0 of 0 (at most 4096)")
        s.shards = 2; s.shard = 2
        #expect(s.problem == "shard 2 of 2 (at most 4096)")
        s.shard = 0; s.start = .max; s.count = .max
        #expect(s.problem == "range 9223372036854775807 + 9223372036854775807 out of bounds")
        s.start = 0; s.count = 10; s.stateCount = -1
        #expect(s.problem == "stateCount -1 out of bounds")

        var c = CheckpointCommit(run: "r", shard: 0, slot: 1, step: 3, chunks: 1, bytes: 10, crc32: "00000000")
        #expect(c.problem == nil)
        c.slot = 2
        #expect(c.problem == "slot 2 is not 0 or 1")
        c.slot = 0; c.chunks = 0
        #expect(c.problem == "0 chunks; 1 to 1024")

        #expect(VersionEvaluation(version: "v", images: 1, metrics: ["auc.mean": 7], evaluatedAt: "now").meanAUC == nil)
        #expect(VersionEvaluation(version: "v", images: 1, metrics: ["auc.mean": 0.7], evaluatedAt: "now").meanAUC == 0.7)
    }

    @Test("checked sizes never trap")
    func checkedSizes() {
        #expect(CheckedSize.product([1 << 30, 1 << 30, 4]) == 1 << 62)
        #expect(CheckedSize.product([Int.max, 2]) == nil)
        #expect(CheckedSize.product([3, -1]) == nil)
        #expect(CheckedSize.product([10, 10], limit: 99) == nil)
        #expect(CheckedSize.product([]) == 1)
        #expect(CheckedSize.sum(.max, 1) == nil)
        #expect(CheckedSize.firstNonFinite([1, 2, .infinity, .nan]) == 2)
        #expect(CheckedSize.firstNonFinite([Float]()) == nil)
    }
}
