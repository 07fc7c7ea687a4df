/// A trained tensor (a weight or a bias), a named view into its network's `ParameterStore`.
/// The name is its key in the state dict (`layer1.0.conv1.weight`).
public final class Parameter {
    public let name: String
    /// PyTorch's shape: (OC, C, KH, KW) for a convolution, (out, in) for a dense layer.
    public let shape: [Int]
    public let count: Int
    /// Offset of the first element in the store's value and gradient arrays.
    public let offset: Int
    /// False when the parameter is frozen: its gradient is neither computed nor applied.
    public var isTrainable = true
    private let memory: ParameterMemory

    init(name: String, shape: [Int], offset: Int, memory: ParameterMemory) {
        self.name = name
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.offset = offset
        self.memory = memory
    }

    /// The values, to read or write. Valid once the network is assembled. Whoever takes this
    /// pointer may write through it, so taking it marks the store's values as changed: weights
    /// the engine prepared from them (packed for inference) are prepared again before next use.
    public var value: UnsafeMutablePointer<Float> {
        memory.markChanged()
        return memory.values + offset
    }
    /// The values for the engine's own reading, which changes nothing.
    var storage: UnsafePointer<Float> { UnsafePointer(memory.values + offset) }
    /// Changes whenever the values of the store this parameter belongs to may have changed.
    var generation: UInt64 { memory.generation }
    /// ∂loss/∂value, accumulated by backward passes; zeroed by `ParameterStore.zeroGradients`.
    public var gradient: UnsafeMutablePointer<Float> { memory.gradients + offset }

    /// The values as an array (copies).
    public var values: [Float] { Array(UnsafeBufferPointer(start: value, count: count)) }
}

/// Untrained state kept with the weights: batch-norm running statistics and counters.
public final class StateBuffer {
    public enum Values {
        case float32([Float])
        case int64([Int64])
    }
    public let name: String
    public let shape: [Int]
    public var values: Values

    init(name: String, shape: [Int], values: Values) {
        self.name = name
        self.shape = shape
        self.values = values
    }

    /// The float values (empty for an integer buffer).
    public var floats: [Float] {
        get { if case .float32(let v) = values { return v } else { return [] } }
        set { values = .float32(newValue) }
    }
}
