/// A growable block of Float owned by one layer: its output, its input gradient, or scratch
/// space. It only grows, so a network that sees the same batch size twice allocates nothing
/// the second time. Contents are not preserved when it grows. Allocations are 64-byte aligned
/// (a cache line; what oneDNN's kernels want of the buffers they are handed).
final class FloatBuffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    /// A shared zero-length allocation for empty views.
    nonisolated(unsafe) static let empty = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    init(capacity: Int = 0) {
        self.capacity = capacity
        pointer = Self.allocate(capacity)
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { pointer.deallocate() }

    /// At least `count` floats, reallocating (without copying) if the buffer is smaller.
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            pointer = Self.allocate(count)
            capacity = count
        }
        return pointer
    }

    /// A view of the first `shape.count` floats, grown if needed.
    func view(_ shape: Shape) -> Activation {
        Activation(data: reserve(shape.count), shape: shape)
    }

    /// Like `view`, with every element set to zero.
    func zeroedView(_ shape: Shape) -> Activation {
        let view = view(shape)
        view.data.update(repeating: 0, count: shape.count)
        return view
    }
}
