internal import CDNNL

/// One argument of a primitive: the caller's NCHW/OIHW memory and, when the primitive wants
/// another layout, a buffer in that layout with the reorder into it (`into`, an input) or out
/// of it (an output). The buffer is oneDNN's own allocation, or, given `storage`, a layer's
/// buffer grown to fit at each use (shared by the plans of several batch sizes).
final class StagedArgument {
    let user: Memory
    /// The memory the primitive reads or writes: the user's, or the staging buffer.
    let memory: Memory
    private let reorder: Primitive?
    private let into: Bool
    private let storage: FloatBuffer?
    /// The primitive's layout as an `Activation`'s channel block (1: NCHW; 8, 16: nChw8c,
    /// nChw16c), when `dims` were given and it is one of those; else nil.
    let channelBlock: Int?
    /// The last `enter(_:data:block:)` bound the caller's blocked data directly.
    private var direct = false

    init(user: Memory, layout: MemoryDescriptor, into: Bool, engine: dnnl_engine_t,
         storage: FloatBuffer? = nil, activation dims: [Int]? = nil) throws(OneDNNError) {
        self.user = user; self.into = into
        channelBlock = try dims.flatMap { (dims) throws(OneDNNError) in try layout.channelBlock(dims) }
        if layout.isEqual(to: user.descriptor) {
            memory = user; reorder = nil; self.storage = nil
        } else {
            memory = try Memory(layout, engine: engine, owned: storage == nil)
            reorder = into ? try Primitive(reorderFrom: user.descriptor, to: layout, engine: engine)
                : try Primitive(reorderFrom: layout, to: user.descriptor, engine: engine)
            self.storage = storage
        }
    }

    /// Readies the staging buffer and, for an input, reorders the user's data into it; returns
    /// the memory to pass to the primitive.
    func enter(_ stream: Stream) throws(OneDNNError) -> Memory {
        if let storage { try memory.bind(storage.reserve(memory.descriptor.floatCount)) }
        if let reorder, into { try reorder.execute(stream, [(DNNL_ARG_FROM, user), (DNNL_ARG_TO, memory)]) }
        return memory
    }

    /// Like `enter(_:)` for the caller's `data` in layout `block`: NCHW (1) is bound as the
    /// user's memory and reordered as usual; the primitive's own blocked layout
    /// (`channelBlock`) is bound as the primitive's memory, with nothing to reorder. The
    /// memory must have been made with a `storage` buffer or be the user's (the binding
    /// replaces the staging buffer for this use only).
    func enter(_ stream: Stream, data: UnsafeRawPointer, block: Int) throws(OneDNNError) -> Memory {
        direct = block != 1
        guard direct else {
            try user.bind(data)
            return try enter(stream)
        }
        guard block == channelBlock, storage != nil || memory === user else {
            throw OneDNNError(operation: "binding an activation in nChw\(block)c to a primitive that wants another layout", status: -1)
        }
        try memory.bind(data)
        return memory
    }

    /// For an output, reorders the result out to the user's memory (unless it was written in
    /// place by a direct `enter`).
    func leave(_ stream: Stream) throws(OneDNNError) {
        if direct { return }
        if let reorder, !into { try reorder.execute(stream, [(DNNL_ARG_FROM, memory), (DNNL_ARG_TO, user)]) }
    }
}
