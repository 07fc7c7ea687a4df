/// One step of a network: a forward pass and its backward pass over float32 batches, NCHW or
/// channel-blocked (`Activation.channelBlock`): a layer takes either, converting what it cannot
/// work in, and returns its input gradient in its input's layout.
///
/// A layer owns the memory of what it returns (its output, its input gradient); a returned
/// view stays valid until the layer's next call. Backward passes *add* into parameter
/// gradients (zero them with `ParameterStore.zeroGradients()`), and must follow a forward
/// pass in `.training` mode on the same batch.
public protocol Layer: AnyObject {
    /// This layer's parameters and its children's, in state-dict order.
    var parameters: [Parameter] { get }
    /// Running statistics and counters, in state-dict order.
    var buffers: [StateBuffer] { get }
    /// The output shape for an input shape (preconditions check the input is acceptable).
    func outputShape(for input: Shape) -> Shape
    /// Computes the output for `input`.
    func forward(_ input: Activation, mode: Mode) -> Activation
    /// Given ∂loss/∂output, accumulates ∂loss/∂parameters for trainable parameters and, if
    /// `inputGradient`, returns ∂loss/∂input (otherwise an empty view).
    func backward(_ dOutput: Activation, inputGradient: Bool) -> Activation
}

extension Layer {
    public var buffers: [StateBuffer] { [] }
    public var parameters: [Parameter] { [] }
    /// True when any parameter below this layer trains.
    public var hasTrainableParameters: Bool { parameters.contains { $0.isTrainable } }
}
