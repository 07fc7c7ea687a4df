/// Every parameter of a network in one allocation, carved into named views, with a gradient
/// array of the same layout: the optimiser is one loop, and a gradient update is a slice of
/// one flat array. Layers declare their parameters while the network is built; `allocate()`
/// then reserves the memory once.
public final class ParameterStore {
    public private(set) var parameters: [Parameter] = []
    /// Total floats across all parameters.
    public private(set) var count = 0
    /// Shared with every parameter, so a layer stays usable whoever holds it.
    private let memory = ParameterMemory()
    var values: UnsafeMutablePointer<Float> {
        memory.markChanged()
        return memory.values
    }
    var gradients: UnsafeMutablePointer<Float> { memory.gradients }

    init() {}

    /// Declares a parameter; its memory exists after `allocate()`.
    func make(_ name: String, _ shape: [Int]) -> Parameter {
        precondition(!memory.isAllocated, "parameters must be declared before the store is allocated")
        let parameter = Parameter(name: name, shape: shape, offset: count, memory: memory)
        parameters.append(parameter)
        count += parameter.count
        return parameter
    }

    /// Reserves the values and gradients (zeroed).
    func allocate() {
        memory.allocate(count)
    }

    /// Sets every gradient to zero. Backward passes add into the gradients, so call this
    /// before each step's first backward.
    public func zeroGradients() {
        gradients.update(repeating: 0, count: count)
    }

    /// All values, flat, in declaration order. Taking them marks the values as changed (see
    /// `Parameter.value`).
    public var flatValues: UnsafeMutableBufferPointer<Float> { .init(start: values, count: count) }
    /// All gradients, flat, in declaration order.
    public var flatGradients: UnsafeMutableBufferPointer<Float> { .init(start: gradients, count: count) }
}

/// The two flat arrays behind a store: values and gradients.
final class ParameterMemory {
    private(set) var values = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var gradients = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var isAllocated = false
    /// Counts the times the values were handed out for writing; packed copies compare it.
    private(set) var generation: UInt64 = 0

    func markChanged() { generation &+= 1 }

    func allocate(_ count: Int) {
        precondition(!isAllocated, "the store is already allocated")
        values.deallocate(); gradients.deallocate()
        values = .allocate(capacity: max(count, 1))
        gradients = .allocate(capacity: max(count, 1))
        values.initialize(repeating: 0, count: max(count, 1))
        gradients.initialize(repeating: 0, count: max(count, 1))
        isAllocated = true
    }

    deinit {
        values.deallocate()
        gradients.deallocate()
    }
}
