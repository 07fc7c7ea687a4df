import Foundation
import Testing
@testable import Engine

@Suite("Weight files, schedules and optimiser state")
struct WeightFileTests {
    @Test func safetensorsRoundTripKeepsNamesShapesValuesAndMetadata() throws {
        let network = Network(architecture: .smallCNN, labels: 3, seed: 1)
        let file = SafeTensors.File(tensors: network.stateDict(), metadata: ["xray.manifest": "{\"a\":1}"])
        let decoded = try SafeTensors.decode(try SafeTensors.encode(file))
        #expect(decoded.metadata == file.metadata)
        #expect(decoded.byName == file.byName)
        let copy = Network(architecture: .smallCNN, labels: 3, seed: 2)
        #expect(copy.parameters[0].values != network.parameters[0].values)
        let report = try copy.load(decoded.tensors)
        #expect(report.loaded == 14 + 12)
        #expect(copy.parameters.map(\.values) == network.parameters.map(\.values))
    }

    @Test func halfPrecisionAndBFloat16AreWidened() throws {
        // 1.0, -2.0, 65504 (largest half), a subnormal; bf16 1.0 and -0.5.
        let header = #"{"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}"#
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for v: UInt16 in [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3F80, 0xBF00] { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        let file = try SafeTensors.decode(data).byName
        #expect(file["h"]?.floats == [1, -2, 65504, 0x1p-24])
        #expect(file["b"]?.floats == [1, -0.5])
    }

    @Test("malformed files are refused with a reason", arguments: [
        Data([1, 2, 3]),
        Data([255, 255, 255, 255, 0, 0, 0, 0]) + Data("{}".utf8),
        Data([2, 0, 0, 0, 0, 0, 0, 0]) + Data("[]".utf8),
        Data([60, 0, 0, 0, 0, 0, 0, 0]) + Data(#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}    "#.utf8),
    ])
    func malformed(data: Data) {
        #expect(throws: EngineError.self) { try SafeTensors.decode(data) }
    }

    @Test func loadingAnotherArchitectureFailsWithoutTouchingNothingSilently() throws {
        let small = Network(architecture: .smallCNN, labels: 3)
        let resnet = Network(architecture: .resnet18, labels: 3)
        #expect(throws: EngineError.self) { try resnet.load(small.stateDict()) }
        #expect(throws: EngineError.self) { try small.load(resnet.stateDict()) }
    }

    @Test func warmupThenPlateau() {
        var s = LearningRateSchedule.warmupPlateau(WarmupPlateau(base: 0.1, warmupSteps: 10, warmupStartFraction: 0.1,
                                                                 factor: 0.5, patience: 2, epsilon: 0.01, cooldown: 1, minimum: 0.02))
        #expect(abs(s.rate(atStep: 0) - 0.01) < 1e-7)
        #expect(abs(s.rate(atStep: 5) - 0.055) < 1e-7)
        #expect(s.rate(atStep: 10) == 0.1)
        // Improves, then stalls for `patience` observations → halved; cooldown 1 → the next
        // stall does not count; two more stalls → halved again, then floored at the minimum.
        for loss: Float in [1.0, 0.9, 0.895, 0.899] { s.observe(loss) }
        #expect(s.rate(atStep: 100) == 0.05)
        s.observe(0.9)
        #expect(s.rate(atStep: 100) == 0.05)
        s.observe(0.9); s.observe(0.9)
        #expect(s.rate(atStep: 100) == 0.025)
        for _ in 0..<4 { s.observe(0.9) }
        #expect(s.rate(atStep: 100) == 0.02)
    }

    @Test func cosineWithWarmup() {
        let s = LearningRateSchedule.cosine(Cosine(base: 1, minimum: 0.1, warmupSteps: 4, totalSteps: 104))
        #expect(s.rate(atStep: 0) == 0.25)
        #expect(s.rate(atStep: 3) == 1)
        #expect(abs(s.rate(atStep: 4) - 1) < 1e-6)
        #expect(abs(s.rate(atStep: 54) - 0.55) < 1e-6)
        #expect(abs(s.rate(atStep: 104) - 0.1) < 1e-6)
        #expect(abs(s.rate(atStep: 500) - 0.1) < 1e-6)
    }

    /// Three steps, save to file bytes, restore into a fresh optimiser, two more steps: the same weights as
    /// five uninterrupted steps.
    @Test(arguments: [OptimizerKind.sgd, .adam, .adamw])
    func optimizerStateSurvivesARestart(kind: OptimizerKind) throws {
        func network() -> Network { let n = Network(architecture: .smallCNN, labels: 2, seed: 3); n.setTrainable(.head); return n }
        func step(_ n: Network, _ o: Optimizer, _ i: Int) {
            for p in n.trainableParameters { set2(p, gradientSeed: UInt64(i)) }
            o.apply(to: n.store, learningRate: 0.01)
        }
        func set2(_ p: Parameter, gradientSeed: UInt64) {
            let g = randomValues(p.count, seed: gradientSeed &+ UInt64(p.offset))
            for i in 0..<p.count { p.gradient[i] = g[i] }
        }
        let settings = OptimizerSettings(kind: kind, nesterov: true, weightDecay: 0.01)
        let straight = network(), o1 = Optimizer(settings, parameterCount: straight.store.count)
        for i in 0..<5 { step(straight, o1, i) }
        let first = network(), o2 = Optimizer(settings, parameterCount: first.store.count)
        for i in 0..<3 { step(first, o2, i) }
        // Through the bytes of a file, as an aggregator restart would.
        let saved = try OptimizerState(file: SafeTensors.decode(try SafeTensors.encode(try o2.state.file())))
        #expect(saved == o2.state)
        let weights = try SafeTensors.decode(try SafeTensors.encode(SafeTensors.File(tensors: first.stateDict()))).tensors
        let resumed = network(), o3 = Optimizer(settings, parameterCount: resumed.store.count)
        try resumed.load(weights)
        try o3.restore(saved)
        for i in 3..<5 { step(resumed, o3, i) }
        #expect(resumed.parameters.map(\.values) == straight.parameters.map(\.values))
        #expect(o3.step == 5)
        // Frozen parameters never moved.
        #expect(resumed.parameters[0].values == network().parameters[0].values)
    }
}
