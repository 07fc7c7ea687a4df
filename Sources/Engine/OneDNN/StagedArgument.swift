internal import CDNNL

/// One argument of a primitive: the caller's NCHW/OIHW memory and, when the primitive wants
/// another layout, a buffer in that layout with the reorder into it (`into`, an input) or out
/// of it (an output). The buffer is oneDNN's own allocation, or, given `storage`, a layer's
/// buffer grown to fit at each use (shared by the plans of several batch sizes).
///
/// An activation argument (`activation` dims given) also takes the caller's data in a
/// channel-blocked layout (`ChannelBlocks`): bound as it is when that is the primitive's own
/// layout, else reordered from (or to) the `blocked` layout it was made for.
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
    /// The caller's memory in the other channel-blocked layout it may use, with its reorder.
    private let blockedUser: (memory: Memory, block: Int, reorder: Primitive, staging: FloatBuffer)?
    /// How the last `enter(_:data:block:)` bound the caller's data.
    private var binding = Binding.user
    private enum Binding { case user, direct, blocked }

    init(user: Memory, layout: MemoryDescriptor, into: Bool, engine: dnnl_engine_t,
         storage: FloatBuffer? = nil, activation dims: [Int]? = nil, blocked: Int? = nil) throws(OneDNNError) {
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
        if let dims, let blocked, blocked > 1, blocked != channelBlock, dims[1] % blocked == 0 {
            let descriptor = try MemoryDescriptor(dims, blocked == 8 ? dnnl_nChw8c : dnnl_nChw16c)
            blockedUser = (try Memory(descriptor, engine: engine, owned: false), blocked,
                           into ? try Primitive(reorderFrom: descriptor, to: layout, engine: engine)
                                : try Primitive(reorderFrom: layout, to: descriptor, engine: engine),
                           FloatBuffer())
        } else {
            blockedUser = nil
        }
    }

    /// Readies the staging buffer and, for an input, reorders the user's data into it; returns
    /// the memory to pass to the primitive.
    func enter(_ stream: Stream) throws(OneDNNError) -> Memory {
        binding = .user
        if let storage { try memory.bind(storage.reserve(memory.descriptor.floatCount)) }
        if let reorder, into { try reorder.execute(stream, [(DNNL_ARG_FROM, user), (DNNL_ARG_TO, memory)]) }
        return memory
    }

    /// True when `enter(_:data:block:)` takes data in `block`.
    func takes(block: Int) -> Bool { block == 1 || directly(block) || block == blockedUser?.block }

    /// True when data in `block` is bound as it is.
    private func directly(_ block: Int) -> Bool { block > 1 && block == channelBlock && (storage != nil || memory === user) }

    /// Like `enter(_:)` for the caller's `data` in layout `block`, one that `takes`: NCHW (1) is
    /// bound as the user's memory and reordered as usual; the primitive's own blocked layout
    /// is bound as the primitive's memory, with nothing to reorder (the binding replaces the
    /// staging buffer for this use only); the other blocked layout is reordered.
    func enter(_ stream: Stream, data: UnsafeRawPointer, block: Int) throws(OneDNNError) -> Memory {
        if block == 1 {
            try user.bind(data)
            return try enter(stream)
        }
        if directly(block) {
            binding = .direct
            try memory.bind(data)
            return memory
        }
        guard let blockedUser, block == blockedUser.block else {
            throw OneDNNError(operation: "binding an activation in nChw\(block)c to a primitive that wants another layout", status: -1)
        }
        binding = .blocked
        try blockedUser.memory.bind(data)
        try memory.bind((storage ?? blockedUser.staging).reserve(memory.descriptor.floatCount))
        if into { try blockedUser.reorder.execute(stream, [(DNNL_ARG_FROM, blockedUser.memory), (DNNL_ARG_TO, memory)]) }
        return memory
    }

    /// For an output, reorders the result out to the caller's memory (unless it was written
    /// in place by a direct `enter`).
    func leave(_ stream: Stream) throws(OneDNNError) {
        guard !into else { return }
        switch binding {
        case .direct: return
        case .blocked:
            if let blockedUser { try blockedUser.reorder.execute(stream, [(DNNL_ARG_FROM, memory), (DNNL_ARG_TO, blockedUser.memory)]) }
        case .user:
            if let reorder { try reorder.execute(stream, [(DNNL_ARG_FROM, memory), (DNNL_ARG_TO, user)]) }
        }
    }
}
