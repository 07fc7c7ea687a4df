import Engine
import Foundation
import KafkaIO
import Logging
import ModelVersions
import Synchronization
@testable import Stages
import Testing
import Wire

/// The parts of streaming training that need no broker: gradient records, the shard
/// aggregator's rules, checkpoints, trained versions and the gate.
@Suite("Distributed training without a broker")
struct DistributedTrainingTests {
    static let spec = PreprocessSpec(resize: 18, crop: 16, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])

    func model(seed: UInt64 = 3) throws -> ModelFile {
        try ModelFile.initialized(architecture: .smallCNN, labels: ["Pneumonia", "Effusion"], preprocess: Self.spec, seed: seed)
    }

    /// Records as a consumer would read them, on the partition each was sent to.
    func consumed(_ records: [OutgoingRecord]) -> [KafkaRecord] {
        records.enumerated().map {
            KafkaRecord(topic: $1.topic, partition: $1.partition ?? 0, offset: Int64($0), key: $1.key, value: $1.value, headers: $1.headers)
        }
    }

    /// A batch of `n` random inputs and targets, and the gradient of its mean loss.
    func gradient(_ m: ModelFile, n: Int, seed: UInt64) -> (inputs: [Float], targets: [Float], gradient: [Float], loss: Float) {
        var rng = SeededGenerator(seed: seed)
        let inputs = (0..<(n * 3 * 16 * 16)).map { _ in rng.normal() }
        let targets = (0..<(n * 2)).map { _ in rng.uniform() < 0.5 ? Float(1) : 0 }
        let x = UnsafeMutablePointer<Float>.allocate(capacity: inputs.count)
        defer { x.deallocate() }
        x.initialize(from: inputs, count: inputs.count)
        let loss = SigmoidCrossEntropy(labels: 2)
        m.network.store.zeroGradients()
        let value = loss.forward(m.network.forward(Activation(data: x, shape: Shape(n: n, c: 3, h: 16, w: 16)), mode: .training), targets: targets)
        m.network.backward(loss.backward())
        return (inputs, targets, Array(m.network.store.flatGradients), value)
    }

    func contributions(_ m: ModelFile, gradient: [Float], delta: [Float], shards: Int, id: String, trainer: String,
                       base: String, step: Int, samples: Int, chunkFloats: Int = 5_000) throws -> [ShardContribution] {
        let records = gradient.withUnsafeBufferPointer {
            GradientCodec.records(gradient: $0, stateDelta: delta, layout: ShardLayout(parameterCount: gradient.count, shards: shards),
                                  contribution: id, trainer: trainer, baseVersion: base, baseStep: step, samples: samples,
                                  loss: 0.5, topic: "xray.gradients", chunkFloats: chunkFloats)
        }
        var assembler = GradientAssembler()
        let complete = try consumed(records.reversed()).compactMap { try assembler.add($0) }
        #expect(assembler.incomplete == 0)
        return complete.sorted { $0.shard < $1.shard }
    }

    @Test func gradientRecordsCutByShardAndAssembleBack() throws {
        let m = try model()
        let g = gradient(m, n: 4, seed: 1).gradient
        let delta = (0..<m.network.floatState.count).map { Float($0) / 100 }
        let parts = try contributions(m, gradient: g, delta: delta, shards: 4, id: "b1", trainer: "t", base: "v0", step: 0, samples: 4)
        let layout = ShardLayout(parameterCount: g.count, shards: 4)
        #expect(parts.map(\.shard) == [0, 1, 2, 3])
        for p in parts {
            #expect(p.start == layout.range(p.shard).lowerBound)
            #expect(p.gradient == Array(g[layout.range(p.shard)]))
            #expect(p.records.allSatisfy { $0.partition == Int32(p.shard) })
        }
        #expect(parts[0].stateDelta == delta && parts[1].stateDelta == nil)
        // A damaged record is refused by name; the others are untouched.
        var records = g.withUnsafeBufferPointer {
            GradientCodec.records(gradient: $0, stateDelta: [], layout: layout, contribution: "b2", trainer: "t", baseVersion: "v0",
                                  baseStep: 0, samples: 4, loss: 0.5, topic: "xray.gradients", chunkFloats: 5_000)
        }
        records[0].value[7] ^= 0x40
        var assembler = GradientAssembler()
        #expect(throws: BadInput.self) { try assembler.add(consumed(records)[0]) }
        var moved = consumed(records)[1]
        moved.partition = 3
        #expect(throws: BadInput.self) { try assembler.add(moved) }
    }

    /// Four shards stepped by their own optimisers end where one optimiser over the whole
    /// network ends: with one trainer and every layer training (batch-norm statistics
    /// included), and with two trainers splitting each batch 2 + 4 when the per-image
    /// gradients do not depend on the batch (only the head trains).
    @Test(arguments: [(TrainableScope.all, [0..<6]), (TrainableScope.head, [0..<2, 2..<6])])
    func shardedStepsEqualOneOptimiserOnTheCombinedBatch(scope: TrainableScope, split: [Range<Int>]) throws {
        let whole = try model(), sharded = try model()
        whole.network.setTrainable(scope); sharded.network.setTrainable(scope)
        let settings = OptimizerSettings(kind: .adam, weightDecay: 1e-4)
        let optimizer = Optimizer(settings, parameterCount: whole.network.store.count)
        let shards = (0..<4).map { s in
            ShardAggregator(run: "r", base: "v0", shard: s, layout: ShardLayout(parameterCount: sharded.network.store.count, shards: 4),
                            network: sharded.network, mode: .synchronous(trainers: split.count, barrierTimeout: .seconds(60)),
                            optimizer: settings, schedule: .constant(1e-2))
        }
        for step in 0..<3 {
            let combined = gradient(whole, n: 6, seed: UInt64(step))
            optimizer.apply(to: whole.network.store, learningRate: 1e-2)
            let base = step == 0 ? "v0" : ShardAggregator.versionName(run: "r", step: step)
            let now = ContinuousClock.now
            for (t, range) in split.enumerated() {
                let (g, delta) = gradientOn(sharded, combined.inputs, combined.targets, range: range)
                for c in try contributions(sharded, gradient: g, delta: delta, shards: 4, id: "\(t)-\(step)", trainer: "T\(t)",
                                           base: base, step: step, samples: range.count) {
                    #expect(shards[c.shard].add(c, now: now) == .pending)
                    if t < split.count - 1 { #expect(shards[c.shard].nextStep(now: now) == nil, "the barrier waits for every trainer") }
                }
            }
            for shard in shards {
                let due = try #require(shard.nextStep(now: now))
                #expect(shard.apply(due)?.samples == 6)
            }
            // the trainers' next version
            let flat = sharded.network.store.flatValues
            for (i, v) in shards.flatMap(\.values).enumerated() { flat[i] = v }
            sharded.network.floatState = shards[0].state!
        }
        let worst = zip(Array(whole.network.store.flatValues), shards.flatMap(\.values)).map { abs($0 - $1) }.max()!
        let worstState = zip(whole.network.floatState, shards[0].state!).map { abs($0 - $1) }.max()!
        print("sharded (\(split.count) trainer(s), trains \(scope)) vs whole after 3 Adam steps: weights max abs \(worst), statistics \(worstState)")
        #expect(worst <= 1e-6 && worstState <= 1e-5)
        #expect(shards.allSatisfy { $0.step == 3 && $0.version == "r-000003" })
    }

    /// The gradient of images `range` of a batch and the change of the statistics, as a trainer computes them.
    func gradientOn(_ m: ModelFile, _ inputs: [Float], _ targets: [Float], range: Range<Int>) -> ([Float], [Float]) {
        let per = 3 * 16 * 16
        let n = range.count
        let x = UnsafeMutablePointer<Float>.allocate(capacity: n * per)
        defer { x.deallocate() }
        x.initialize(from: Array(inputs[(range.lowerBound * per)..<(range.upperBound * per)]), count: n * per)
        let loss = SigmoidCrossEntropy(labels: 2)
        let saved = m.network.floatState
        m.network.store.zeroGradients()
        _ = loss.forward(m.network.forward(Activation(data: x, shape: Shape(n: n, c: 3, h: 16, w: 16)), mode: .training),
                         targets: Array(targets[(range.lowerBound * 2)..<(range.upperBound * 2)]))
        m.network.backward(loss.backward())
        let delta = zip(m.network.floatState, saved).map { $0 - $1 }
        m.network.floatState = saved
        return (Array(m.network.store.flatGradients), delta)
    }

    @Test func theRulesDropStaleDuplicateAndForeignContributionsAndWaitOutADeadTrainer() throws {
        let m = try model()
        let layout = ShardLayout(parameterCount: m.network.store.count, shards: 2)
        let g = [Float](repeating: 0.01, count: layout.parameterCount)
        func shard0(_ id: String, _ trainer: String, base: String, step: Int) throws -> ShardContribution {
            try contributions(m, gradient: g, delta: [], shards: 2, id: id, trainer: trainer, base: base, step: step, samples: 2)[0]
        }
        let sync = ShardAggregator(run: "r", base: "v0", shard: 0, layout: layout, network: m.network,
                                   mode: .synchronous(trainers: 1, barrierTimeout: .seconds(5)),
                                   optimizer: OptimizerSettings(kind: .sgd), schedule: .constant(0.1))
        let t0 = ContinuousClock.now
        #expect(sync.add(try shard0("a", "A", base: "v0", step: 0), now: t0) == .pending)
        #expect(sync.add(try shard0("b", "B", base: "v0", step: 0), now: t0) == .pending)
        _ = sync.apply(try #require(sync.nextStep(now: t0)))
        #expect(sync.add(try shard0("a", "A", base: "v0", step: 0), now: t0) == .duplicate)
        #expect(sync.add(try shard0("c", "A", base: "v0", step: 0), now: t0) == .stale(1))
        #expect(sync.add(try shard0("d", "A", base: "other-000001", step: 1), now: t0) == .foreign)
        // B stops: the barrier of step 2 waits for it until the timeout, then goes on without it.
        #expect(sync.add(try shard0("e", "A", base: "r-000001", step: 1), now: t0) == .pending)
        #expect(sync.nextStep(now: t0 + .seconds(4)) == nil)
        let late = try #require(sync.nextStep(now: t0 + .seconds(6)))
        #expect(late.missed == ["B"] && late.contributions.map(\.id) == ["e"])
        _ = sync.apply(late)
        #expect(sync.add(try shard0("f", "A", base: "r-000002", step: 2), now: t0) == .pending)
        #expect(sync.nextStep(now: t0)?.contributions.map(\.id) == ["f"], "B no longer holds up the barrier")

        let async = ShardAggregator(run: "r", base: "v0", shard: 0, layout: layout, network: m.network, mode: .asynchronous(maxStaleness: 1),
                                    optimizer: OptimizerSettings(kind: .sgd), schedule: .constant(0.1))
        for (id, base, step) in [("p", "v0", 0), ("q", "v0", 0), ("r", "v0", 0)] {
            #expect(async.add(try shard0(id, "A", base: base, step: step), now: t0) == .pending)
        }
        var applied: [String] = [], dropped: [String] = []
        while let due = async.nextStep(now: t0) {
            applied += due.contributions.map(\.id); dropped += due.dropped.map(\.id)
            _ = async.apply(due)
        }
        #expect(applied == ["p", "q"] && dropped == ["r"], "r was computed 2 versions back, over the bound of 1")
        #expect(async.step == 2)
    }

    @Test func aCheckpointRestoresTheShardExactlyAndATornSlotIsIgnored() throws {
        let m = try model()
        let layout = ShardLayout(parameterCount: m.network.store.count, shards: 2)
        let shard = ShardAggregator(run: "r", base: "v0", shard: 0, layout: layout, network: m.network,
                                    mode: .asynchronous(maxStaleness: 4), optimizer: OptimizerSettings(kind: .adam),
                                    schedule: .warmupPlateau(WarmupPlateau(base: 1e-3, warmupSteps: 5)))
        var records: [OutgoingRecord] = []
        for step in 0..<3 {
            var rng = SeededGenerator(seed: UInt64(step))
            let g = (0..<layout.parameterCount).map { _ in rng.normal() }
            let delta = (0..<m.network.floatState.count).map { _ in rng.normal() * 0.01 }
            let base = step == 0 ? "v0" : ShardAggregator.versionName(run: "r", step: step)
            for c in try contributions(m, gradient: g, delta: delta, shards: 2, id: "c\(step)", trainer: "A", base: base, step: step, samples: 3)
            where c.shard == 0 {
                _ = shard.add(c, now: .now)
                _ = shard.apply(try #require(shard.nextStep(now: .now)))
            }
            records += try CheckpointCodec.records(shard.checkpoint, topic: "xray.checkpoints", chunkBytes: 50_000)
        }
        // Step 4's write dies after its first chunk: slot 0 now mixes steps; step 3 (slot 1) is intact.
        let saved = shard.checkpoint
        var torn = saved
        torn.step = 4
        records += try CheckpointCodec.records(torn, topic: "xray.checkpoints", chunkBytes: 50_000).prefix(1)
        var reader = CheckpointReader(run: "r")
        for r in consumed(records) { reader.add(r) }
        let restored = try #require(reader.checkpoint(shard: 0))
        #expect(restored == saved && restored.step == 3 && restored.lastApplied == ["c2"])
        let again = try ShardAggregator(restoring: restored, network: m.network, mode: .asynchronous(maxStaleness: 4))
        #expect(again.values == shard.values && again.state == shard.state && again.version == "r-000003")
        #expect(again.add(try contributions(m, gradient: [Float](repeating: 0, count: layout.parameterCount), delta: [], shards: 2,
                                            id: "c2", trainer: "A", base: "r-000002", step: 2, samples: 1)[0], now: .now) == .duplicate)
    }

    @Test func shardsOfATrainedVersionRebuildTheModel() throws {
        let base = try model(seed: 1), trained = try model(seed: 2)
        trained.network.floatState = trained.network.floatState.map { $0 + 0.25 }
        let layout = ShardLayout(parameterCount: base.network.store.count, shards: 3)
        var records = try ModelVersionCodec.records(for: try base.encoded(), manifest: base.manifest, version: "v0", topic: "m", chunkBytes: 300_000)
        for s in 0..<3 {
            let r = layout.range(s)
            var a = ShardAnnouncement(version: "r-000001", run: "r", step: 1, base: "v0", shard: s, shards: 3, start: r.lowerBound,
                                      count: r.count, chunks: 0, crc32: "", manifest: base.manifest, publishedAt: "now")
            a.contributions = s == 1 ? ["b"] : ["a", "b"]  // shard 1 left "a" out (its barrier timed out)
            a.recentContributions = s == 1 ? ["z", "b"] : ["z", "a", "b"]
            records += try ModelVersionCodec.shardRecords(values: Array(trained.network.store.flatValues[r]), state: s == 0 ? trained.network.floatState : nil,
                                                      announcement: a, topic: "m", chunkBytes: 100_000)
        }
        var scorer = ModelVersionAssembler(), trainer = ModelVersionAssembler(assembling: [.published, .trained])
        let forScorer = consumed(records).compactMap { scorer.add($0) }
        #expect(forScorer.filter { if case .complete = $0 { true } else { false } }.count == 1, "scorers take v0 only")
        let outcomes = consumed(records).compactMap { trainer.add($0) }
        guard case .complete(let a, let file)? = outcomes.last else { Issue.record("not assembled: \(outcomes)"); return }
        #expect(a.version == "r-000001" && a.kind == .trained && a.step == 1 && a.base == "v0")
        #expect(a.contributions == ["b"], "only what every shard applied")
        #expect(a.recentContributions == ["z", "b"], "only what every shard applied")
        let rebuilt = try ModelFile.decode(file, name: "rebuilt")
        #expect(Array(rebuilt.network.store.flatValues) == Array(trained.network.store.flatValues))
        #expect(rebuilt.network.floatState == trained.network.floatState)
        // A shard without its base on the topic is refused with the reason.
        var orphan = ModelVersionAssembler(assembling: [.trained])
        let refused = consumed(Array(records.drop { $0.headers.text(ModelVersionRecord.Header.part) != ModelVersionRecord.Part.shardChunk }))
            .compactMap { orphan.add($0) }
        guard case .rejected(_, let reason)? = refused.last else { Issue.record("not refused"); return }
        #expect(reason.contains("base version v0"))
    }

    @Test func aSynchronousTrainerSettlesABatchOnlyOnceItsVersionIsOutAndPassesOverABatchAlreadyApplied() async throws {
        let v0 = try model()
        let slot = TrainingSlot()
        let file = try v0.encoded()
        slot.offer(ModelAnnouncement(version: "v0", manifest: v0.manifest, chunks: 1, bytes: file.count, crc32: "", publishedAt: "now"),
                   model: v0)
        var settings = TrainerSettings(trainerID: "t", gradientsTopic: "xray.gradients", inputTopic: "xray.tensors", shards: 2,
                                       batching: Batching(maxRecords: 4, maxWait: .zero))
        settings.split = PatientSplit(validationFraction: 0)
        let trainer = TrainerStage(settings: settings, slot: slot, logger: Logger(label: "test"))
        var rng = SeededGenerator(seed: 9)
        let batch = (0..<4).map { i in
            KafkaRecord(topic: "xray.tensors", partition: 0, offset: Int64(i), key: nil,
                        value: Tensor(shape: [3, 16, 16], values: (0..<768).map { _ in rng.normal() }).encoded(),
                        headers: [KafkaHeader(HeaderName.imageID, "img\(i)"), KafkaHeader(HeaderName.labels, i % 2 == 0 ? "Effusion" : "")])
        }
        let outputs = trainer.process(batch: batch).map { try! $0.get() }
        #expect(outputs[0].count > 0 && outputs.dropFirst().allSatisfy(\.isEmpty), "the gradient is the first record's output")
        let id = try #require(outputs[0].first?.headers.text(GradientRecord.Header.contribution))

        let settled = Mutex(false)
        let settling = Task { try await trainer.settle(batch); settled.withLock { $0 = true } }
        try await Task.sleep(for: .milliseconds(300))
        #expect(!settled.withLock { $0 }, "not committed before the version it makes is out")
        var trained = ModelAnnouncement(version: "r-000001", manifest: v0.manifest, chunks: 1, bytes: file.count, crc32: "", publishedAt: "now")
        trained.run = "r"; trained.step = 1; trained.base = "v0"; trained.contributions = [id]
        slot.offer(trained, model: try ModelFile.decode(file, name: "r-000001"))
        try await settling.value
        #expect(settled.withLock { $0 })

        // The same batch read again (a restart before its commit): already in r-000001.
        #expect(trainer.process(batch: batch).allSatisfy { (try? $0.get())?.isEmpty == true })
        #expect(slot.version(applying: id) == "r-000001")

        // A trainer restarted after step 2 reads r-000002 alone: its step applied another
        // batch, but the run's recent contributions still name this one, so the replay is
        // passed over instead of sent at r-000002, refused as a duplicate and waited on forever.
        let restartedSlot = TrainingSlot()
        var second = ModelAnnouncement(version: "r-000002", manifest: v0.manifest, chunks: 1, bytes: file.count, crc32: "", publishedAt: "now")
        second.run = "r"; second.step = 2; second.base = "v0"; second.contributions = ["other"]; second.recentContributions = [id, "other"]
        restartedSlot.offer(second, model: try ModelFile.decode(file, name: "r-000002"))
        let restarted = TrainerStage(settings: settings, slot: restartedSlot, logger: Logger(label: "test"))
        #expect(restarted.process(batch: batch).allSatisfy { (try? $0.get())?.isEmpty == true })
        #expect(restartedSlot.version(applying: id) == "r-000002")
    }

    /// The gradient records a trainer at v0 (no augmentation, asynchronous, nobody held out)
    /// sends for `records`, with `configure` applied to its settings.
    static func gradientAtV0(_ records: [KafkaRecord], slot: TrainingSlot, _ configure: (inout TrainerSettings) -> Void) throws -> [[UInt8]] {
        var settings = TrainerSettings(trainerID: "t", gradientsTopic: "xray.gradients", inputTopic: "xray.tensors", shards: 2,
                                       batching: Batching(maxRecords: 4, maxWait: .zero))
        settings.split = PatientSplit(validationFraction: 0)
        settings.synchronous = false
        settings.augment = false
        configure(&settings)
        let trainer = TrainerStage(settings: settings, slot: slot, logger: Logger(label: "test"))
        return try trainer.process(batch: records).map { try $0.get() }.flatMap { $0.filter { $0.topic == "xray.gradients" }.map(\.value) }
    }

    /// A slot holding v0, and four random 3x16x16 tensors on partition 0, image i labelled by `labels(i)`.
    func slotAndBatch(seed: UInt64, labels: (Int) -> String) throws -> (TrainingSlot, [KafkaRecord]) {
        let v0 = try model()
        let slot = TrainingSlot()
        slot.offer(ModelAnnouncement(version: "v0", manifest: v0.manifest, chunks: 1, bytes: 1, crc32: "", publishedAt: "now"), model: v0)
        var rng = SeededGenerator(seed: seed)
        let batch = (0..<4).map { i in
            KafkaRecord(topic: "xray.tensors", partition: 0, offset: Int64(i), key: nil,
                        value: Tensor(shape: [3, 16, 16], values: (0..<768).map { _ in rng.normal() }).encoded(),
                        headers: [KafkaHeader(HeaderName.imageID, "img\(i)"), KafkaHeader(HeaderName.labels, labels(i))])
        }
        return (slot, batch)
    }

    @Test("with dropout before the head a replayed batch sends the same gradient, and another batch a different one")
    func dropoutIsSeededByTheBatch() throws {
        let (slot, batch) = try slotAndBatch(seed: 10) { $0 % 2 == 0 ? "Effusion" : "" }
        func gradient(_ dropout: Float, _ records: [KafkaRecord]) throws -> [[UInt8]] {
            try Self.gradientAtV0(records, slot: slot) { $0.dropout = dropout }
        }
        let dropped = try gradient(0.5, batch)
        #expect(!dropped.isEmpty)
        #expect(try gradient(0.5, batch) == dropped, "a replay computes the same gradient")
        #expect(try gradient(0, batch) != dropped, "dropout changes the gradient")
        let moved = batch.map { KafkaRecord(topic: $0.topic, partition: 1, offset: $0.offset, key: nil, value: $0.value, headers: $0.headers) }
        #expect(try gradient(0.5, moved) != dropped, "another batch (another contribution id) draws another mask")
    }

    @Test("a class-balanced batch weighs its positives by its own negatives/positives, the same on replay")
    func classBalanceComesFromTheBatch() throws {
        // One Effusion among four images: balanced, its positive weighs 3.
        let (slot, batch) = try slotAndBatch(seed: 11) { $0 == 0 ? "Effusion" : "" }
        func gradient(balance: Bool, weights: [String: Float]) throws -> [[UInt8]] {
            try Self.gradientAtV0(batch, slot: slot) { $0.balanceClasses = balance; $0.positiveWeights = weights }
        }
        let balanced = try gradient(balance: true, weights: [:])
        #expect(!balanced.isEmpty)
        #expect(try gradient(balance: true, weights: [:]) == balanced, "a replay computes the same gradient")
        #expect(try gradient(balance: false, weights: ["Effusion": 3]) == balanced)
        #expect(try gradient(balance: false, weights: [:]) != balanced)
    }

    @Test func theGatePromotesOnlyAVersionNoWorseThanTheServingOne() {
        let gate = GatePolicy(meanMargin: 0, labelMargin: 0.02)
        let labels = ["A", "B"]
        let serving = ["auc.mean": 0.80, "auc.A": 0.85, "auc.B": 0.75]
        #expect(gate.decide(candidate: ["auc.mean": 0.82, "auc.A": 0.84, "auc.B": 0.80], serving: serving, labels: labels).promote)
        #expect(!gate.decide(candidate: ["auc.mean": 0.79, "auc.A": 0.86, "auc.B": 0.72], serving: serving, labels: labels).promote)
        let dropped = gate.decide(candidate: ["auc.mean": 0.81, "auc.A": 0.80, "auc.B": 0.82], serving: serving, labels: labels)
        #expect(!dropped.promote && dropped.reason.contains("A AUC"))
        // Held unless both versions have a finite mean AUC on the window.
        let unscoredServing = gate.decide(candidate: ["auc.mean": 0.9], serving: [:], labels: labels)
        #expect(!unscoredServing.promote && unscoredServing.reason.contains("serving version has no finite mean AUC"))
        #expect(!gate.decide(candidate: [:], serving: serving, labels: labels).promote)
        #expect(!gate.decide(candidate: ["auc.mean": .nan], serving: serving, labels: labels).promote)
        #expect(!gate.decide(candidate: ["auc.mean": 0.9], serving: ["auc.mean": .infinity], labels: labels).promote)
        #expect(!gate.decide(candidate: ["auc.mean": 0.9, "auc.A": .nan], serving: serving, labels: labels).promote)
    }
}
