import CheckedArithmetic
public import Engine
import Foundation
public import Wire

/// How an aggregator turns contributions into steps.
public enum AggregationMode: Sendable, Equatable {
    /// One step per barrier: the step from version k waits for a contribution at version k
    /// from every trainer in the barrier (at least `trainers` of them at first), and applies
    /// their sample-weighted mean — exactly one large batch. A trainer that has not
    /// contributed `barrierTimeout` after the barrier opened is left out of it (and of later
    /// barriers until it contributes again), so a dead trainer stalls the run only that long.
    case synchronous(trainers: Int, barrierTimeout: Duration)
    /// One step per contribution, in arrival order; a contribution computed more than
    /// `maxStaleness` versions before the current one is dropped and counted.
    case asynchronous(maxStaleness: Int)
}

/// The training state of one parameter shard and the rules that turn trainers'
/// contributions into optimiser steps. Pure: no I/O, no clock of its own (callers pass `now`).
///
/// No contribution is applied twice: the ids of the last `rememberedIDs` applied ones are
/// kept (and checkpointed), so records read again after a restart are recognised.
public final class ShardAggregator {
    public static let rememberedIDs = 4096

    /// What became of a contribution on arrival.
    public enum Arrival: Equatable, Sendable {
        /// Waiting for its step.
        case pending
        /// Already applied (read again after a restart, or a trainer's replayed batch).
        case duplicate
        /// Computed at a version this run has left behind by this many steps; dropped.
        case stale(Int)
        /// Computed at a version that is not this run's; dropped.
        case foreign
        /// Does not fit this shard (another shard, range or cut, statistics of the wrong size);
        /// dropped, with why.
        case malformed(String)
        /// More contributions wait than `maxPending`; dropped.
        case overflow
    }

    /// A step ready to apply, and what the rules dropped on the way.
    public struct Step {
        public var contributions: [ShardContribution]
        /// Contributions dropped as too stale (asynchronous mode).
        public var dropped: [ShardContribution]
        /// Trainers left out of the barrier because they did not contribute in time.
        public var missed: [String]
    }

    /// What an applied step did.
    public struct Summary: Sendable {
        public var step: Int
        public var samples: Int
        public var loss: Float
        public var learningRate: Float
        public var contributions: Int
        public var trainers: [String]
        /// Why the step left the weights as they were, if it did: the mean gradient, or the
        /// weights or statistics after the update, were not finite. The step still counts, so
        /// synchronous trainers waiting for its version go on.
        public var skipped: String?
    }

    /// Contributions that may wait for their step at once.
    public static let maxPending = 1024
    /// A contribution waiting longer than this is dropped (`expire(now:)`).
    public static let pendingExpiry: Duration = .seconds(900)
    /// The largest mean-gradient magnitude applied: its square must stay a finite float.
    static let maxGradient: Float = 1e18

    public let run: String
    public let base: String
    public let shard: Int
    public let layout: ShardLayout
    public let mode: AggregationMode
    public private(set) var step: Int
    /// This shard's parameter values, layout.range(shard).
    public private(set) var values: [Float]
    /// Batch-norm running statistics (shard 0 only).
    public private(set) var state: [Float]?
    public private(set) var schedule: LearningRateSchedule
    let optimizer: Optimizer
    /// Trainable ranges, relative to the shard's start.
    private let trainable: [Range<Int>]
    /// The contributions the latest step applied, by id.
    public private(set) var lastApplied: [String]
    /// The last `count` contributions applied, oldest first.
    public func recentlyApplied(_ count: Int) -> [String] { Array(appliedOrder.suffix(count)) }
    private var appliedOrder: [String]
    private var applied: Set<String>
    private var pending: [(contribution: ShardContribution, arrived: ContinuousClock.Instant)] = []
    /// Synchronous mode: the trainers each barrier waits for.
    private var members: Set<String> = []

    /// A shard starting at step 0 from `network`'s values (the run's base version).
    public init(run: String, base: String, shard: Int, layout: ShardLayout, network: Network, mode: AggregationMode,
                optimizer settings: OptimizerSettings, schedule: LearningRateSchedule) {
        let range = layout.range(shard)
        self.run = run; self.base = base; self.shard = shard; self.layout = layout; self.mode = mode
        step = 0
        values = Array(network.store.flatValues[range])
        state = shard == 0 ? network.floatState : nil
        self.schedule = schedule
        optimizer = Optimizer(settings, parameterCount: range.count)
        if settings.anchorDecay != nil { optimizer.anchor = values }
        trainable = Self.trainableRanges(network, range)
        appliedOrder = []
        applied = []
        lastApplied = []
    }

    /// A shard continuing from a checkpoint; `network` (the run's base version) gives the
    /// trainable ranges and the anchor of `OptimizerSettings.anchorDecay`.
    /// Throws `CorruptState` if the checkpoint does not fit the network or holds a weight or
    /// statistic that is not finite.
    public init(restoring c: ShardCheckpoint, network: Network, mode: AggregationMode) throws {
        let what = "checkpoint of \(c.run) shard \(c.shard) at step \(c.step)"
        guard let layout = try? ShardLayout.checked(parameterCount: network.store.count, shards: c.shards), c.shard < c.shards else {
            throw CorruptState(what, "it is shard \(c.shard) of \(c.shards), which does not cut \(network.store.count) parameters")
        }
        let range = layout.range(c.shard)
        guard c.values.count == range.count else {
            throw CorruptState(what, "it holds \(c.values.count) values, the shard has \(range.count)")
        }
        let stateCount = c.shard == 0 ? network.floatState.count : 0
        guard (c.state?.count ?? 0) == stateCount else {
            throw CorruptState(what, "it holds \(c.state?.count ?? 0) statistics, the shard keeps \(stateCount)")
        }
        guard CheckedSize.firstNonFinite(c.values) == nil, CheckedSize.firstNonFinite(c.state ?? []) == nil,
              (0...GradientRecord.Limits.maxStep).contains(c.step) else {
            throw CorruptState(what, "a weight or statistic is not finite, or the step is out of range")
        }
        if let problem = c.schedule.problem ?? c.optimizer.settings.problem { throw CorruptState(what, problem) }
        run = c.run; base = c.base; shard = c.shard; self.layout = layout; self.mode = mode
        step = c.step
        values = c.values
        state = c.state
        schedule = c.schedule
        optimizer = Optimizer(c.optimizer.settings, parameterCount: range.count)
        try optimizer.restore(c.optimizer)
        // `network` is the run's base: what L2-SP pulls toward.
        if c.optimizer.settings.anchorDecay != nil { optimizer.anchor = Array(network.store.flatValues[range]) }
        trainable = Self.trainableRanges(network, range)
        appliedOrder = Array(c.applied.suffix(Self.rememberedIDs))
        applied = Set(appliedOrder)
        lastApplied = c.lastApplied
    }

    private static func trainableRanges(_ network: Network, _ range: Range<Int>) -> [Range<Int>] {
        network.store.parameters.filter(\.isTrainable).compactMap { p in
            let low = max(p.offset, range.lowerBound), high = min(p.offset + p.count, range.upperBound)
            return low < high ? (low - range.lowerBound)..<(high - range.lowerBound) : nil
        }
    }

    /// The name of this run's version after `step` steps (step 0 is the base).
    public static func versionName(run: String, step: Int) -> String {
        "\(run)-\(String(step, radix: 10).leftPadded(to: 6))"
    }

    public var version: String { step == 0 ? base : Self.versionName(run: run, step: step) }

    /// Takes a contribution for this shard.
    public func add(_ c: ShardContribution, now: ContinuousClock.Instant) -> Arrival {
        let range = layout.range(shard)
        guard c.shard == shard, c.shards == layout.shards else {
            return .malformed("shard \(c.shard) of \(c.shards) arrived at shard \(shard) of \(layout.shards)")
        }
        guard c.start == range.lowerBound, c.gradient.count == range.count else {
            return .malformed("it covers \(c.gradient.count) values from \(c.start); the shard is \(range.count) from \(range.lowerBound)")
        }
        if let d = c.stateDelta, d.count != state?.count {
            return .malformed("its statistics change has \(d.count) values; the shard keeps \(state?.count ?? 0)")
        }
        if applied.contains(c.id) || pending.contains(where: { $0.contribution.id == c.id }) { return .duplicate }
        let expected = c.baseStep == 0 ? base : Self.versionName(run: run, step: c.baseStep)
        guard c.baseVersion == expected else { return .foreign }
        if case .synchronous = mode {
            members.insert(c.trainer)
            if c.baseStep < step { return .stale(step - c.baseStep) }
        }
        guard pending.count < Self.maxPending else { return .overflow }
        pending.append((c, now))
        return .pending
    }

    /// Drops contributions that waited longer than `pendingExpiry` (computed at a step this
    /// shard never reached, say) and returns them, so their records can be marked done.
    public func expire(now: ContinuousClock.Instant) -> [ShardContribution] {
        let expired = pending.filter { now - $0.arrived > Self.pendingExpiry }.map(\.contribution)
        let ids = Set(expired.map(\.id))
        pending.removeAll { ids.contains($0.contribution.id) }
        return expired
    }

    /// The next step, if the mode's rules say one is due now.
    public func nextStep(now: ContinuousClock.Instant) -> Step? {
        switch mode {
        case .asynchronous(let maxStaleness):
            var dropped: [ShardContribution] = []
            while let first = pending.first?.contribution, step - first.baseStep > maxStaleness {
                dropped.append(first)
                pending.removeFirst()
            }
            guard let index = pending.firstIndex(where: { $0.contribution.baseStep <= step }) else {
                return dropped.isEmpty ? nil : Step(contributions: [], dropped: dropped, missed: [])
            }
            return Step(contributions: [pending[index].contribution], dropped: dropped, missed: [])
        case .synchronous(let trainers, let timeout):
            let current = pending.filter { $0.contribution.baseStep == step }
            guard let opened = current.map(\.arrived).min() else { return nil }
            let present = Set(current.map(\.contribution.trainer))
            let complete = present.isSuperset(of: members) && present.count >= trainers
            guard complete || now - opened >= timeout else { return nil }
            let missed = members.subtracting(present).sorted()
            return Step(contributions: current.map(\.contribution), dropped: [], missed: missed)
        }
    }

    /// Applies a step from `nextStep`: the sample-weighted mean gradient through the
    /// optimiser at the schedule's rate, the weighted mean change of the running statistics.
    /// If the mean gradient, or the weights or statistics after the update, are not finite,
    /// the weights and statistics stay as they were and the summary says why (`skipped`).
    public func apply(_ s: Step) -> Summary? {
        let ids = Set((s.contributions + s.dropped).map(\.id))
        pending.removeAll { ids.contains($0.contribution.id) }
        members.subtract(s.missed)
        guard !s.contributions.isEmpty else { return nil }
        let ordered = s.contributions.sorted { $0.id < $1.id }
        // Sample counts are bounded by the record format, so the sum cannot overflow.
        let total = ordered.reduce(0) { $0 + $1.samples }
        var gradient = [Float](repeating: 0, count: values.count)
        var delta = state.map { [Float](repeating: 0, count: $0.count) }
        var loss: Float = 0
        for c in ordered {
            let weight = Float(c.samples) / Float(total)
            for i in gradient.indices { gradient[i] += weight * c.gradient[i] }
            if let d = c.stateDelta, d.count == delta?.count {
                for i in d.indices { delta?[i] += weight * d[i] }
            }
            loss += weight * c.loss
        }
        let rate = schedule.rate(atStep: step)
        var skipped: String?
        if gradient.contains(where: { !($0.magnitude <= Self.maxGradient) }) {
            skipped = "the mean gradient is not finite (or above \(Self.maxGradient))"
        } else {
            let before = values
            values.withUnsafeMutableBufferPointer { v in
                gradient.withUnsafeBufferPointer { g in optimizer.apply(values: v, gradients: g, trainable: trainable, learningRate: rate) }
            }
            if CheckedSize.firstNonFinite(values) != nil {
                values = before
                skipped = "the update would make a weight non-finite"
            }
        }
        if skipped == nil, let delta, let current = state {
            let updated = zip(current, delta).map { $0 + $1 }
            if CheckedSize.firstNonFinite(updated) == nil { state = updated } else { skipped = "the statistics would become non-finite" }
        }
        step += 1
        for c in ordered { remember(c.id) }
        lastApplied = ordered.map(\.id)
        return Summary(step: step, samples: total, loss: loss, learningRate: rate, contributions: ordered.count,
                       trainers: Array(Set(ordered.map(\.trainer))).sorted(), skipped: skipped)
    }

    private func remember(_ id: String) {
        applied.insert(id)
        appliedOrder.append(id)
        if appliedOrder.count > Self.rememberedIDs { applied.remove(appliedOrder.removeFirst()) }
    }

    /// Feeds the plateau phase of the schedule (a validation loss, e.g. 1 − mean AUC).
    public func observe(_ metric: Float) { schedule.observe(metric) }

    /// Everything needed to continue after a restart.
    public var checkpoint: ShardCheckpoint {
        ShardCheckpoint(run: run, base: base, shard: shard, shards: layout.shards, step: step, values: values, state: state,
                        optimizer: optimizer.state, schedule: schedule, applied: appliedOrder,
                        lastApplied: lastApplied)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
