import CheckedArithmetic
import Engine
import Foundation
import Imaging
import KafkaIO
import Logging
@testable import ModelVersions
@testable import Stages
import Testing
import Wire

/// The stages and their readers against records a hostile or broken producer can write:
/// each is refused with a reason (or given up within a bound), none traps, none is kept
/// without limit.
@Suite("Hostile records at the stages")
struct HostileRecordTests {
    static let spec = PreprocessSpec(resize: 18, crop: 16, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])

    func model(seed: UInt64 = 3) throws -> ModelFile {
        try ModelFile.initialized(architecture: .smallCNN, labels: ["Pneumonia", "Effusion"], preprocess: Self.spec, seed: seed)
    }

    /// Weights of ±3e37 in turn: sums of infinities of both signs make NaN in any forward pass.
    func explode(_ m: ModelFile) {
        for p in m.network.parameters { for i in 0..<p.count { p.value[i] = i % 2 == 0 ? 3e37 : -3e37 } }
    }

    func consumed(_ records: [OutgoingRecord], from offset: Int = 0) -> [KafkaRecord] {
        records.enumerated().map {
            KafkaRecord(topic: $1.topic, partition: $1.partition ?? 0, offset: Int64(offset + $0), key: $1.key, value: $1.value, headers: $1.headers)
        }
    }

    func record(_ topic: String = "xray.models", headers: [(String, String)], value: [UInt8] = [], partition: Int32 = 0) -> KafkaRecord {
        KafkaRecord(topic: topic, partition: partition, offset: 0, key: nil, value: value, headers: headers.map { KafkaHeader($0.0, $0.1) })
    }

    // MARK: xray.models

    @Test("chunks whose announcement never comes are bounded in number and bytes, and expire")
    func modelChunksAreBounded() throws {
        typealias H = ModelVersionRecord.Header
        var limits = ModelVersionAssembler.Limits()
        limits.pendingVersions = 4
        limits.pendingBytes = 10_000
        limits.expiryRecords = 600
        var assembler = ModelVersionAssembler(limits: limits)
        let chunk = [UInt8](repeating: 7, count: 1000)
        for v in 0..<50 {
            for c in 0..<3 {
                _ = assembler.add(record(headers: [(H.version, "orphan-\(v)"), (H.part, "chunk"), (H.chunk, "\(c)"), (H.crc32, crc32Hex(chunk))],
                                         value: chunk))
            }
            #expect(assembler.waiting.versions <= 4 && assembler.waiting.bytes <= 10_000)
        }
        let dropped = assembler.drainDropped()
        #expect(dropped.count + assembler.waiting.versions == 50 && dropped.allSatisfy { $0.reason.contains("waiting for their announcements") })
        // Records of other versions pass by: the last orphans expire.
        for _ in 0..<700 { _ = assembler.add(record(headers: [(H.version, "x"), (H.part, "evaluation")], value: Array("{}".utf8))) }
        #expect(assembler.waiting.versions == 0 && assembler.waiting.bytes == 0)
        #expect(assembler.drainDropped().contains { $0.reason.contains("never came") })
        // A single version larger than the byte bound is dropped, not kept.
        var small = ModelVersionAssembler(limits: limits)
        for c in 0..<20 {
            _ = small.add(record(headers: [(H.version, "huge"), (H.part, "chunk"), (H.chunk, "\(c)"), (H.crc32, crc32Hex(chunk))], value: chunk))
        }
        #expect(small.waiting.bytes <= 10_000)
    }

    @Test("announcements and shard records whose numbers lie are refused with a reason, never trapping")
    func lyingAnnouncements() throws {
        typealias H = ModelVersionRecord.Header
        let m = try model()
        let file = try m.encoded()
        var records = try ModelVersionCodec.records(for: file, manifest: m.manifest, version: "v1", topic: "xray.models")
        var a = try JSONDecoder().decode(ModelAnnouncement.self, from: Data(records.last!.value))
        a.chunks = 1_000_000_000
        records[records.count - 1].value = [UInt8](try JSONEncoder().encode(a))
        var assembler = ModelVersionAssembler()
        let outcomes = consumed(records).compactMap { assembler.add($0) }
        guard case .rejected(_, let reason)? = outcomes.last else { Issue.record("accepted"); return }
        #expect(reason == "announcement: 1000000000 chunks; at most 1024")

        let shard = ShardAnnouncement(version: "r-000001", run: "r", step: 1, base: "v1", shard: 0, shards: 0, start: 0, count: 10,
                                      chunks: 0, crc32: "", manifest: m.manifest, publishedAt: "now")
        var trained = ModelVersionAssembler(assembling: [.trained])
        let zero = trained.add(record(headers: [(H.version, "r-000001"), (H.part, "shard"), (H.shard, "0")],
                                      value: [UInt8](try JSONEncoder().encode(shard))))
        guard case .rejected(_, let why)? = zero else { Issue.record("zero shards accepted"); return }
        #expect(why.contains("shard 0 of 0"))
        let noShard = trained.add(record(headers: [(H.version, "r-000001"), (H.part, "shard-chunk"), (H.shard, "99999"), (H.chunk, "0")]))
        guard case .rejected = noShard else { Issue.record("shard 99999 accepted"); return }
        let longName = trained.add(record(headers: [(H.version, String(repeating: "v", count: 5000)), (H.part, "chunk")]))
        guard case .rejected = longName else { Issue.record("a 5000-byte version name accepted"); return }
    }

    @Test("a model version with NaN weights, a negative variance, float16 tensors or exploding outputs is refused by content")
    func modelCheck() throws {
        let m = try model()
        #expect(try ModelCheck.verified(try m.encoded(), name: "good").manifest == m.manifest)

        let nan = try model()
        nan.network.parameters[0].value[3] = .nan
        #expect(throws: CorruptState.self) { try ModelCheck.verified(try nan.encoded(), name: "nan") }
        do { _ = try ModelCheck.verified(try nan.encoded(), name: "nan") } catch let e as CorruptState {
            #expect(e.reason == "weight features.0.conv.weight holds a NaN or infinity")
        }

        let negative = try model()
        var state = negative.network.floatState
        state[state.count - 1] = -1  // the last running variance
        negative.network.floatState = state
        #expect(throws: CorruptState.self) { try ModelCheck.verified(try negative.encoded(), name: "negative") }

        let exploding = try model()
        explode(exploding)
        do {
            _ = try ModelCheck.verified(try exploding.encoded(), name: "exploding")
            Issue.record("a model whose forward pass overflows was accepted")
        } catch let e as CorruptState {
            #expect(e.reason.contains("non-finite probability"))
        }

        // A tensor in another dtype (the file's reader converts it; a version must not carry it).
        #expect(ModelCheck.problem(try ModelFile.decode(try m.encoded(), name: "x"), dtypes: ["classifier.bias": "F16"])
                == "tensor classifier.bias is F16; model versions carry float32 weights and int64 counters")

        var tooSmall = m.manifest
        tooSmall.input = [3, 8, 8]
        tooSmall.preprocess = PreprocessSpec(resize: 8, crop: 8, channels: 3, mean: Self.spec.mean, std: Self.spec.std)
        let small = ModelFile(manifest: tooSmall, network: m.network)
        #expect(throws: CorruptState.self) { try ModelCheck.verified(try small.encoded(), name: "8 px") }
    }

    // MARK: xray.gradients

    func gradientRecords(_ values: [Float], id: String = "c1", count: Int = 1, shards: Int = 1) -> [OutgoingRecord] {
        values.withUnsafeBufferPointer {
            GradientCodec.records(gradient: $0, stateDelta: [], layout: ShardLayout(parameterCount: values.count, shards: shards),
                                  contribution: id, trainer: "t", baseVersion: "v0", baseStep: 0, samples: 4, loss: 0.5,
                                  topic: "xray.gradients", chunkFloats: max(1, values.count / count))
        }
    }

    @Test("a gradient with a NaN or an infinity is refused before it is kept")
    func nonFiniteGradient() throws {
        var assembler = GradientAssembler()
        var bad = gradientRecords([1, 2, 3, 4])
        bad[0].value = FloatBytes.encode([1, .nan, 3, 4])
        bad[0].headers = bad[0].headers.filter { $0.name != GradientRecord.Header.crc32 } + [KafkaHeader(GradientRecord.Header.crc32, crc32Hex(bad[0].value))]
        #expect(throws: WireError.nonFinite("gradient", index: 1)) { try assembler.add(consumed(bad)[0]) }
        #expect(assembler.incomplete == 0)
    }

    @Test("partial contributions are bounded and expire, handing back their records")
    func partialContributionsAreBounded() throws {
        var limits = GradientAssembler.Limits()
        limits.contributions = 3
        limits.expiry = .seconds(60)
        var assembler = GradientAssembler(limits: limits)
        let start = ContinuousClock.now
        for i in 0..<10 {
            let records = consumed(gradientRecords([Float](repeating: 1, count: 8), id: "c\(i)", count: 2))
            #expect(try assembler.add(records[0], now: start) == nil)  // the first of two chunks only
            #expect(assembler.incomplete <= 3)
        }
        let pushedOut = assembler.expire(now: start)
        #expect(pushedOut.count == 7 && pushedOut.allSatisfy { $0.records.count == 1 })
        #expect(assembler.expire(now: start + .seconds(30)).isEmpty)
        let expired = assembler.expire(now: start + .seconds(61))
        #expect(expired.count == 3 && expired.allSatisfy { $0.reason.contains("stopped sending") })
        #expect(assembler.incomplete == 0)
    }

    @Test("a contribution that does not fit its shard, or a flood of them, is dropped; a step never makes a weight non-finite")
    func shardRules() throws {
        let m = try model()
        let layout = ShardLayout(parameterCount: m.network.store.count, shards: 2)
        let shard = ShardAggregator(run: "r", base: "v0", shard: 1, layout: layout, network: m.network,
                                    mode: .asynchronous(maxStaleness: 4), optimizer: OptimizerSettings(kind: .sgd, momentum: 0),
                                    schedule: .constant(1))
        let range = layout.range(1)
        func contribution(_ id: String, start: Int, values: [Float], shard s: Int = 1) -> ShardContribution {
            ShardContribution(id: id, trainer: "t", baseVersion: "v0", baseStep: 0, shard: s, shards: 2, samples: 1, loss: 0.1,
                              start: start, gradient: values, stateDelta: nil, records: [])
        }
        guard case .malformed(let why) = shard.add(contribution("short", start: range.lowerBound, values: [1]), now: .now) else {
            Issue.record("a short contribution was taken"); return
        }
        #expect(why.contains("covers 1 values"))
        guard case .malformed = shard.add(contribution("other", start: 0, values: [Float](repeating: 0, count: range.count), shard: 0), now: .now) else {
            Issue.record("shard 0's contribution was taken by shard 1"); return
        }
        // Finite gradients whose update would overflow leave the weights as they were.
        let before = shard.values
        #expect(shard.add(contribution("huge", start: range.lowerBound, values: [Float](repeating: 3e38, count: range.count)), now: .now) == .pending)
        let step = try #require(shard.nextStep(now: .now))
        let summary = try #require(shard.apply(step))
        #expect(summary.skipped != nil && shard.values == before && shard.step == 1)
        #expect(CheckedSize.firstNonFinite(shard.values) == nil)
        // A flood of contributions for steps the shard never reaches is bounded, then expires.
        for i in 0..<(ShardAggregator.maxPending + 5) {
            var c = contribution("ahead\(i)", start: range.lowerBound, values: [Float](repeating: 0, count: range.count))
            c.baseStep = 1000; c.baseVersion = ShardAggregator.versionName(run: "r", step: 1000)
            let arrival = shard.add(c, now: .now)
            #expect(i < ShardAggregator.maxPending ? arrival == .pending : arrival == .overflow)
        }
        #expect(shard.expire(now: .now + ShardAggregator.pendingExpiry + .seconds(1)).count == ShardAggregator.maxPending)
    }

    @Test("a checkpoint with NaN values, a forged schedule or the wrong size is refused as corrupt state")
    func corruptCheckpoints() throws {
        let m = try model()
        let layout = ShardLayout(parameterCount: m.network.store.count, shards: 2)
        let shard = ShardAggregator(run: "r", base: "v0", shard: 0, layout: layout, network: m.network, mode: .asynchronous(maxStaleness: 1),
                                    optimizer: OptimizerSettings(kind: .adam), schedule: .constant(1e-3))
        let good = shard.checkpoint
        #expect((try? ShardAggregator(restoring: good, network: m.network, mode: .asynchronous(maxStaleness: 1))) != nil)
        var nan = good
        nan.values[0] = .nan
        var forged = good
        forged.schedule = .constant(.infinity)
        var short = good
        short.values.removeLast()
        var stats = good
        stats.state = [1, 2]
        var shards = good
        shards.shards = 0
        for bad in [nan, forged, short, stats, shards] {
            #expect(throws: CorruptState.self) { try ShardAggregator(restoring: bad, network: m.network, mode: .asynchronous(maxStaleness: 1)) }
        }
        // The reader keeps only its run's checkpoints.
        var reader = CheckpointReader(run: "other")
        for r in consumed(try CheckpointCodec.records(good, topic: "xray.checkpoints")) { reader.add(r) }
        #expect(reader.checkpoints(shard: 0).isEmpty)
        var mine = CheckpointReader(run: "r")
        for r in consumed(try CheckpointCodec.records(good, topic: "xray.checkpoints")) { mine.add(r) }
        #expect(mine.checkpoint(shard: 0) == good)
    }

    // MARK: Stages

    @Test("the scorer dead-letters a NaN tensor, and an input the model gives a non-finite probability for, without trapping")
    func scorerNonFinite() throws {
        let m = try model()
        let slot = ModelSlot()
        slot.replace(with: ServingModel(m, version: "v1"))
        let scorer = ScorerStage(topics: TopicCatalog(), slot: slot)
        var values = [Float](repeating: 0.1, count: 3 * 16 * 16)
        var good = Tensor(shape: [3, 16, 16], values: values).encoded()
        let nanRecord = { () -> [UInt8] in
            var bytes = good
            bytes.replaceSubrange(20..<24, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init))
            return bytes
        }()
        func tensor(_ id: String, _ value: [UInt8]) -> KafkaRecord {
            KafkaRecord(topic: "xray.tensors", partition: 0, offset: 0, key: Array(id.utf8), value: value, headers: [KafkaHeader(HeaderName.imageID, id)])
        }
        let results = scorer.process(batch: [tensor("ok", good), tensor("nan", nanRecord)])
        #expect((try? results[0].get())?.isEmpty == false)
        guard case .failure(let error) = results[1] else { Issue.record("a NaN tensor was scored"); return }
        #expect(faultCode(error) == "non-finite")

        // A model whose outputs overflow (bypassing the version check, as a bug might).
        let exploding = try model()
        explode(exploding)
        slot.replace(with: ServingModel(exploding, version: "v2"))
        values[0] = 1
        good = Tensor(shape: [3, 16, 16], values: values).encoded()
        let out = scorer.process(batch: [tensor("x", good)])
        guard case .failure(let bad) = out[0] else { Issue.record("a non-finite probability was emitted"); return }
        #expect(faultCode(bad) == "non-finite-output")
    }

    @Test("a trainer whose version gives a non-finite loss sends no gradient and dead-letters the batch")
    func trainerNonFinite() throws {
        let exploding = try model()
        explode(exploding)
        let slot = TrainingSlot()
        slot.offer(ModelAnnouncement(version: "v0", manifest: exploding.manifest, chunks: 1, bytes: 1, crc32: "", publishedAt: "now"),
                   model: exploding)
        var settings = TrainerSettings(trainerID: "t", gradientsTopic: "xray.gradients", inputTopic: "xray.tensors", shards: 2,
                                       batching: Batching(maxRecords: 2, maxWait: .zero))
        settings.split = PatientSplit(validationFraction: 0)
        let trainer = TrainerStage(settings: settings, slot: slot, logger: Logger(label: "test"))
        let batch = (0..<2).map { i in
            KafkaRecord(topic: "xray.tensors", partition: 0, offset: Int64(i), key: nil,
                        value: Tensor(shape: [3, 16, 16], values: [Float](repeating: 0.5, count: 768)).encoded(),
                        headers: [KafkaHeader(HeaderName.imageID, "img\(i)"), KafkaHeader(HeaderName.labels, "Effusion")])
        }
        let results = trainer.process(batch: batch)
        for r in results {
            guard case .failure(let error) = r else { Issue.record("a gradient was sent"); continue }
            #expect(faultCode(error) == "non-finite-gradient")
        }
    }

    @Test("the preprocessor dead-letters a decoded strip with the aspect-ratio reason")
    func preprocessorStrip() throws {
        let stage = try PreprocessorStage(topics: TopicCatalog(), spec: Self.spec)
        let strip = DecodedImage(width: 2, height: 2000, pixels: [UInt8](repeating: 9, count: 4000)).encoded()
        let input = KafkaRecord(topic: "xray.decoded", partition: 0, offset: 0, key: Array("s".utf8), value: strip, headers: [])
        #expect(throws: ImagingError.badAspectRatio(width: 2, height: 2000, limit: 10)) { try stage.process(input) }
        let letter = DeadLetter.record(for: input, stage: "preprocessor", error: ImagingError.badAspectRatio(width: 2, height: 2000, limit: 10),
                                       topic: "xray.deadletter")
        #expect(letter.headers.text(HeaderName.DeadLetter.reason) == "bad-aspect-ratio")
        #expect(letter.headers.text(HeaderName.DeadLetter.error)?.contains("not a radiograph") == true)
    }

    @Test("a .npy whose shape overflows or lies, and one holding a NaN, are refused")
    func npy() throws {
        func npy(_ header: String, _ values: [Float]) -> Data {
            var h = "{'descr': '<f4', 'fortran_order': False, 'shape': \(header), }"
            while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xFF), UInt8(h.utf8.count >> 8)])
            data.append(Data(h.utf8))
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            return data
        }
        #expect(try NpyArray(npy("(2, 2)", [1, 2, 3, 4])).shape == [2, 2])
        #expect(throws: BadInput.self) { try NpyArray(npy("(4294967296, 4294967296, 4294967296)", [1])) }
        #expect(throws: BadInput.self) { try NpyArray(npy("(3,)", [1, 2])) }
        #expect(throws: BadInput.self) { try NpyArray(npy("(-1,)", [1])) }
        #expect(throws: BadInput.self) { try NpyArray(Data([0x93] + Array("NUMPY".utf8) + [2, 0, 0xFF, 0xFF, 0xFF, 0x7F])) }
    }

    @Test("an evaluation over NaN scores has no AUC, and the table still prints")
    func evaluationNaN() throws {
        let m = try model()
        let evaluation = Evaluation(manifest: m.manifest, scores: [[0.1, .nan], [0.9, 0.2], [0.4, 0.3]], truth: [[], ["Pneumonia", "Effusion"], []])
        #expect(evaluation.labels[0].roc != nil && evaluation.labels[1].roc == nil)
        #expect(evaluation.metrics.values.allSatisfy { $0.isFinite })
        #expect(!evaluation.table.isEmpty)
    }

    @Test("every fault kind has its code for dead-letter headers and metrics")
    func faultCodes() {
        #expect(faultCode(BadInput("x", code: "no-image-id")) == "no-image-id")
        #expect(faultCode(WireError.truncated("t", needed: 2, got: 1)) == "truncated")
        #expect(faultCode(ImagingError.empty) == "empty")
        #expect(faultCode(EngineError.malformed("m")) == "malformed")
        #expect(faultCode(CorruptState("v", "r")) == "corrupt-state")
        #expect(ConfigurationError("must be positive", flag: "--batch").description == "--batch: must be positive")
    }
}
