/// The oneDNN plans of one convolution layer: for inference one per batch shape seen (the last
/// `maxPlans`), sharing packed weights where their layouts agree, and all made again when the
/// network's weights or the folded batch norm change; for training one per batch shape (the
/// last `maxTrainingPlans`). When oneDNN refuses a convolution the plans stop trying and the
/// layer computes it itself (`failure` says why).
final class ConvolutionPlans {
    /// What the packed weights were made from.
    private struct Source: Equatable {
        var generation: UInt64, scale: [Float], shift: [Float], relu: Bool
    }

    private var plans: [Shape: FusedConvolution] = [:]
    private var trainingPlans: [Shape: TrainingConvolution] = [:]
    private var packed: [PackedWeights] = []
    private let staging = ConvolutionStaging()
    private var source: Source?
    /// The current weights fold to values that are not finite: computed by the layer itself
    /// until they change.
    private var sourceNotFinite = false
    /// Why oneDNN is not used for this layer, once it refused.
    private(set) var failure: String?
    /// Inference and training plans held now (the batch shapes oneDNN is running).
    var planCount: (inference: Int, training: Int) { (plans.count, trainingPlans.count) }
    /// Batch shapes kept at once (a scorer's adaptive batches have up to its batch size).
    static let maxPlans = 16

    /// The plan for `shape`, made if needed, or nil when oneDNN cannot run this convolution.
    func plan(for shape: Shape, geometry: ConvGeometry, weight: Parameter, bias: Parameter?,
              scale: [Float], shift: [Float], relu: Bool) -> FusedConvolution? {
        guard failure == nil else { return nil }
        follow(Source(generation: weight.generation, scale: scale, shift: shift, relu: relu))
        guard !sourceNotFinite else { return nil }
        if let plan = plans[shape] { return plan }
        if plans.count >= Self.maxPlans { plans = [:] }
        do {
            let plan = try FusedConvolution(geometry: geometry, batch: shape.n, outChannels: weight.shape[0], relu: relu,
                                          staging: staging) {
                (layout) throws(OneDNNError) -> PackedWeights in
                try packedWeights(layout: layout, weight: weight, bias: bias, scale: scale, shift: shift)
            }
            plans[shape] = plan
            return plan
        } catch where error.isNonFiniteWeights {
            sourceNotFinite = true
            return nil
        } catch {
            refuse(error)
            return nil
        }
    }

    /// The weights folded with `scale` and `shift` and packed into `layout`, for a whole-network
    /// plan (`InferenceGraph`): made once per layout and kept until the weights or the folded
    /// batch norm change. Throws `OneDNNError.nonFiniteWeights` when they fold to values that
    /// are not finite.
    /// With `winograd` they are transformed for a `WinogradConvolution` whose matrix products
    /// chose `layout`.
    func packedWeights(for layout: MemoryDescriptor, winograd: Bool = false, weight: Parameter, bias: Parameter?,
                       scale: [Float], shift: [Float], relu: Bool) throws(OneDNNError) -> PackedWeights {
        follow(Source(generation: weight.generation, scale: scale, shift: shift, relu: relu))
        guard !sourceNotFinite else { throw OneDNNError.nonFiniteWeights }
        do {
            return try packedWeights(layout: layout, winograd: winograd, weight: weight, bias: bias, scale: scale, shift: shift)
        } catch where error.isNonFiniteWeights {
            sourceNotFinite = true
            throw error
        }
    }

    /// Forgets every plan and packed weight when what they were made from changed.
    private func follow(_ current: Source) {
        guard current != source else { return }
        plans = [:]; packed = []; source = current; sourceNotFinite = false
    }

    /// (A Winograd layout is (36, C, OC), never equal to a convolution's (OC, C, KH, KW).)
    private func packedWeights(layout: MemoryDescriptor, winograd: Bool = false, weight: Parameter, bias: Parameter?,
                               scale: [Float], shift: [Float]) throws(OneDNNError) -> PackedWeights {
        if let found = packed.first(where: { $0.weights.descriptor.isEqual(to: layout) }) { return found }
        let made = winograd
            ? try PackedWeights(winogradLayout: layout, shape: weight.shape, weights: weight.storage,
                                bias: bias?.storage, scale: scale, shift: shift)
            : try PackedWeights(layout: layout, shape: weight.shape, weights: weight.storage,
                                bias: bias?.storage, scale: scale, shift: shift)
        packed.append(made)
        return made
    }

    /// Training batch shapes kept at once (the full batch and a last partial one, with room).
    static let maxTrainingPlans = 4

    /// The training plan for `shape`, made if needed, or nil when oneDNN cannot run it.
    func trainingPlan(for shape: Shape, geometry: ConvGeometry, outChannels: Int, bias: Bool) -> TrainingConvolution? {
        guard failure == nil else { return nil }
        if let plan = trainingPlans[shape] { return plan }
        if trainingPlans.count >= Self.maxTrainingPlans { trainingPlans = [:] }
        do {
            let plan = try TrainingConvolution(geometry: geometry, batch: shape.n, outChannels: outChannels, bias: bias)
            trainingPlans[shape] = plan
            return plan
        } catch {
            refuse(error)
            return nil
        }
    }

    /// Stops using oneDNN for this layer.
    func refuse(_ error: OneDNNError) {
        failure = error.description
        plans = [:]; packed = []; trainingPlans = [:]
    }
}
