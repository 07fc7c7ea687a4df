import Foundation

/// Which update rule, with PyTorch's semantics (torch.optim.SGD, Adam, AdamW).
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    /// SGD with optional (Nesterov) momentum; weight decay added to the gradient.
    case sgd
    /// Adam; weight decay added to the gradient (L2).
    case adam
    /// Adam with decoupled weight decay: the weights shrink by lr·decay each step.
    case adamw
}

/// The hyper-parameters of an optimiser.
public struct OptimizerSettings: Codable, Sendable, Equatable {
    public var kind: OptimizerKind
    public var momentum: Float = 0.9
    public var nesterov: Bool = false
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0
    /// L2-SP: the coefficient α of α/2·‖w − w₀‖², which pulls the weights back toward the
    /// anchor `Optimizer.anchor` (the run's starting weights) against forgetting what they
    /// knew; nil or 0 for none. Added to the gradient, as `weightDecay` is for Adam and SGD.
    public var anchorDecay: Float?

    /// Nil when the settings make finite updates from finite gradients; otherwise what is
    /// wrong (for settings given on a command line or read back from a checkpoint).
    public var problem: String? {
        guard (0..<1).contains(beta1), (0..<1).contains(beta2), epsilon > 0, epsilon.isFinite,
              momentum.isFinite, momentum >= 0, weightDecay.isFinite, weightDecay >= 0,
              anchorDecay.map({ $0.isFinite && $0 >= 0 }) ?? true else {
            return "optimiser settings out of range (betas in [0, 1), epsilon > 0, momentum, weight decay and anchor decay finite, not negative)"
        }
        return nil
    }

    public init(kind: OptimizerKind, momentum: Float = 0.9, nesterov: Bool = false, beta1: Float = 0.9,
                beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.kind = kind; self.momentum = momentum; self.nesterov = nesterov
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
    }
}

/// Applies accumulated gradients to a network's trainable parameters. Its state (moments,
/// momentum, step count) is laid out like the parameter store, one flat array per slot, so a
/// step is one loop per parameter and the state saves and restores as tensors.
public final class Optimizer {
    public let settings: OptimizerSettings
    /// Steps applied so far (Adam's bias correction counts from 1).
    public private(set) var step = 0
    /// Momentum (SGD) or first moment (Adam), then second moment (Adam).
    private var first: [Float], second: [Float]
    private var started: Bool = false
    /// The weights `settings.anchorDecay` pulls toward, laid out like the values (nil, or an
    /// array of another length, pulls nowhere).
    public var anchor: [Float]?

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        self.settings = settings
        first = .init(repeating: 0, count: parameterCount)
        second = settings.kind == .sgd ? [] : .init(repeating: 0, count: parameterCount)
    }

    /// One update of every trainable parameter from its gradient, at `learningRate`.
    public func apply(to store: ParameterStore, learningRate lr: Float) {
        let ranges = store.parameters.filter(\.isTrainable).map { $0.offset..<($0.offset + $0.count) }
        apply(values: store.flatValues, gradients: UnsafeBufferPointer(store.flatGradients), trainable: ranges, learningRate: lr)
    }

    /// One update of `values[r]` from `gradients[r]` for each range `r` of `trainable`, at
    /// `learningRate`. The optimiser's state is laid out like `values`, so an aggregator that
    /// owns a slice (shard) of a network's parameters runs exactly the whole-network update on
    /// it: the rules are element-wise.
    public func apply(values: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>,
                      trainable: [Range<Int>], learningRate lr: Float) {
        precondition(first.count == values.count && gradients.count == values.count,
                     "optimiser state is for \(first.count) values, got \(values.count) values and \(gradients.count) gradients")
        step += 1
        // L2-SP: the penalty's gradient α(w − w₀) joins the loss's.
        var pulled: [Float]?
        if let anchor, anchor.count == values.count, let alpha = settings.anchorDecay, alpha > 0 {
            pulled = (0..<values.count).map { gradients[$0] + alpha * (values[$0] - anchor[$0]) }
        }
        if let pulled {
            pulled.withUnsafeBufferPointer { update(values, $0, trainable, lr) }
        } else {
            update(values, gradients, trainable, lr)
        }
        started = true
    }

    /// Parameters per parallel work item of an update.
    private static let block = 16_384

    private func update(_ values: UnsafeMutableBufferPointer<Float>, _ gradients: UnsafeBufferPointer<Float>,
                        _ trainable: [Range<Int>], _ lr: Float) {
        first.withUnsafeMutableBufferPointer { m in
            second.withUnsafeMutableBufferPointer { v in
                // The rules are element-wise, so blocks of a range update in parallel with the
                // same result as one loop.
                for range in trainable {
                    let blocks = (range.count + Self.block - 1) / Self.block
                    Parallel.forEach(blocks, costPerItem: Self.block) { b in
                        let start = range.lowerBound + b * Self.block
                        let part = start..<min(range.upperBound, start + Self.block)
                        switch settings.kind {
                        case .sgd: sgd(values, gradients, m, part, lr)
                        case .adam, .adamw: adam(values, gradients, m, v, part, lr)
                        }
                    }
                }
            }
        }
    }

    private func sgd(_ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>,
                     _ buf: UnsafeMutableBufferPointer<Float>, _ range: Range<Int>, _ lr: Float) {
        let s = settings
        for i in range {
            var d = g[i] + s.weightDecay * w[i]
            if s.momentum != 0 {
                buf[i] = started ? s.momentum * buf[i] + d : d
                d = s.nesterov ? d + s.momentum * buf[i] : buf[i]
            }
            w[i] -= lr * d
        }
    }

    private func adam(_ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>,
                      _ m: UnsafeMutableBufferPointer<Float>, _ v: UnsafeMutableBufferPointer<Float>,
                      _ range: Range<Int>, _ lr: Float) {
        let s = settings
        let correction1 = 1 - pow(s.beta1, Float(step))
        let correction2Root = (1 - pow(s.beta2, Float(step))).squareRoot()
        let stepSize = lr / correction1
        let decoupled = s.kind == .adamw
        for i in range {
            var d = g[i]
            if decoupled { w[i] *= 1 - lr * s.weightDecay } else { d += s.weightDecay * w[i] }
            m[i] = s.beta1 * m[i] + (1 - s.beta1) * d
            v[i] = s.beta2 * v[i] + (1 - s.beta2) * d * d
            w[i] -= stepSize * m[i] / (v[i].squareRoot() / correction2Root + s.epsilon)
        }
    }

    /// The state as named tensors plus the step count, for saving.
    public var state: OptimizerState {
        var slots = ["first": first]
        if !second.isEmpty { slots["second"] = second }
        return OptimizerState(settings: settings, step: step, slots: slots)
    }

    /// Continues from a saved state (same settings kind and parameter count).
    public func restore(_ saved: OptimizerState) throws {
        guard saved.settings.kind == settings.kind else {
            throw EngineError.incompatible("the saved optimiser state is \(saved.settings.kind.rawValue), not \(settings.kind.rawValue)")
        }
        guard let savedFirst = saved.slots["first"], savedFirst.count == first.count,
              saved.slots["second"]?.count ?? 0 == second.count else {
            throw EngineError.incompatible("the saved optimiser state is for a different network (parameter count differs)")
        }
        guard saved.step >= 0 else { throw EngineError.malformed("the saved optimiser state has step \(saved.step)") }
        first = savedFirst
        second = saved.slots["second"] ?? []
        step = saved.step
        started = step > 0
    }
}

/// An optimiser's saved state.
public struct OptimizerState: Sendable, Equatable {
    public var settings: OptimizerSettings
    public var step: Int
    public var slots: [String: [Float]]
}

extension OptimizerState {
    /// The state as a safetensors file: one tensor per slot (`optimizer.first`,
    /// `optimizer.second`), the settings and step count in the metadata. Throws if a setting
    /// is not a finite number (JSON has none).
    public func file() throws -> SafeTensors.File {
        let settingsJSON = String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
        return SafeTensors.File(
            tensors: slots.sorted { $0.key < $1.key }.map { NamedTensor(name: "optimizer.\($0.key)", shape: [$0.value.count], floats: $0.value) },
            metadata: ["xray.optimizer": settingsJSON, "xray.optimizer.step": String(step)])
    }

    /// Reads a state written by `file`.
    public init(file: SafeTensors.File) throws {
        guard let json = file.metadata["xray.optimizer"], let stepText = file.metadata["xray.optimizer.step"],
              let step = Int(stepText),
              let settings = try? JSONDecoder().decode(OptimizerSettings.self, from: Data(json.utf8))
        else { throw EngineError.malformed("not an optimiser state file (no xray.optimizer metadata)") }
        var slots: [String: [Float]] = [:]
        for t in file.tensors where t.name.hasPrefix("optimizer.") { slots[String(t.name.dropFirst(10))] = t.floats }
        self.init(settings: settings, step: step, slots: slots)
    }
}
