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

    init(user: Memory, layout: MemoryDescriptor, into: Bool, engine: dnnl_engine_t,
         storage: FloatBuffer? = nil) throws(OneDNNError) {
        self.user = user; self.into = into
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

    /// For an output, reorders the result out to the user's memory.
    func leave(_ stream: Stream) throws(OneDNNError) {
        if let reorder, !into { try reorder.execute(stream, [(DNNL_ARG_FROM, memory), (DNNL_ARG_TO, user)]) }
    }
}
