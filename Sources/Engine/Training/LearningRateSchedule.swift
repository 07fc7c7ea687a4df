import Foundation

/// How the learning rate moves over a run. `rate(atStep:)` is called once per optimiser step;
/// `observe(_:)` takes a validation metric (lower is better, a loss) after each evaluation,
/// which is what the plateau phase watches. Codable, so it is saved with the optimiser state.
public enum LearningRateSchedule: Codable, Sendable, Equatable {
    case constant(Float)
    case warmupPlateau(WarmupPlateau)
    case cosine(Cosine)

    public func rate(atStep step: Int) -> Float {
        switch self {
        case .constant(let lr): lr
        case .warmupPlateau(let s): s.rate(atStep: step)
        case .cosine(let s): s.rate(atStep: step)
        }
    }

    /// Nil when every setting and every piece of state is within range (as the initialisers
    /// and `observe` keep them); otherwise what is wrong. For a schedule read back from a
    /// checkpoint, whose fields no initialiser checked.
    public var problem: String? {
        let steps = 0...1_000_000_000
        func rate(_ r: Float) -> Bool { r.isFinite && r >= 0 && r <= 1000 }
        switch self {
        case .constant(let lr):
            return rate(lr) ? nil : "the constant rate \(lr) is not in [0, 1000]"
        case .warmupPlateau(let s):
            guard rate(s.base), rate(s.current), rate(s.minimum), s.warmupStartFraction.isFinite, s.epsilon.isFinite,
                  s.factor > 0 && s.factor < 1, !s.best.isNaN, steps.contains(s.warmupSteps), steps.contains(s.patience),
                  steps.contains(s.cooldown), steps.contains(s.wait), steps.contains(s.cooldownLeft) else {
                return "the warm-up/plateau settings or state are out of range"
            }
            return nil
        case .cosine(let s):
            guard rate(s.base), rate(s.minimum), steps.contains(s.warmupSteps), steps.contains(s.totalSteps),
                  s.totalSteps > s.warmupSteps else {
                return "the cosine settings are out of range"
            }
            return nil
        }
    }

    /// Feeds a validation loss to schedules that react to it.
    public mutating func observe(_ metric: Float) {
        if case .warmupPlateau(var s) = self {
            s.observe(metric)
            self = .warmupPlateau(s)
        }
    }
}

/// Linear warm-up to `base` over `warmupSteps`, then Keras/BigDL's ReduceLROnPlateau: when the
/// watched loss has not improved by more than `epsilon` for `patience` observations, multiply
/// the rate by `factor` (not below `minimum`), then wait `cooldown` observations before
/// counting again. The seeds' defaults: factor 0.1, patience 10, epsilon 1e-4, cooldown 0.
public struct WarmupPlateau: Codable, Sendable, Equatable {
    public var base: Float
    public var warmupSteps: Int
    /// The rate at step 0, as a fraction of `base`.
    public var warmupStartFraction: Float
    public var factor: Float
    public var patience: Int
    public var epsilon: Float
    public var cooldown: Int
    public var minimum: Float
    /// Plateau state.
    public private(set) var current: Float
    public private(set) var best: Float = .infinity
    public private(set) var wait = 0
    public private(set) var cooldownLeft = 0

    public init(base: Float, warmupSteps: Int = 0, warmupStartFraction: Float = 0.1, factor: Float = 0.1,
                patience: Int = 10, epsilon: Float = 1e-4, cooldown: Int = 0, minimum: Float = 0) {
        precondition(factor > 0 && factor < 1, "the plateau factor must be in (0, 1)")
        self.base = base; self.warmupSteps = warmupSteps; self.warmupStartFraction = warmupStartFraction
        self.factor = factor; self.patience = patience; self.epsilon = epsilon
        self.cooldown = cooldown; self.minimum = minimum
        current = base
    }

    public func rate(atStep step: Int) -> Float {
        guard step < warmupSteps else { return current }
        let start = base * warmupStartFraction
        return start + (base - start) * Float(step) / Float(warmupSteps)
    }

    public mutating func observe(_ loss: Float) {
        if cooldownLeft > 0 {
            cooldownLeft -= 1
            wait = 0
        }
        if loss < best - epsilon {
            best = loss
            wait = 0
        } else if cooldownLeft == 0 {
            wait += 1
            if wait >= patience {
                current = max(current * factor, minimum)
                cooldownLeft = cooldown
                wait = 0
            }
        }
    }
}

/// Linear warm-up over `warmupSteps`, then a half cosine from `base` to `minimum` at
/// `totalSteps` (held at `minimum` after).
public struct Cosine: Codable, Sendable, Equatable {
    public var base: Float
    public var minimum: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(base: Float, minimum: Float = 0, warmupSteps: Int = 0, totalSteps: Int) {
        precondition(totalSteps > warmupSteps, "the cosine schedule needs more steps than its warm-up")
        self.base = base; self.minimum = minimum; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    public func rate(atStep step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let t = min(1, Float(step - warmupSteps) / Float(totalSteps - warmupSteps))
        return minimum + 0.5 * (base - minimum) * (1 + cos(.pi * t))
    }
}
