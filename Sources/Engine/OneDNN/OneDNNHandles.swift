internal import CDNNL

/// A oneDNN memory descriptor (shape, data type, layout), destroyed with this object.
final class MemoryDescriptor {
    let handle: dnnl_memory_desc_t

    /// A dense descriptor of `dims` in the layout `tag` (dnnl_format_tag_any lets a primitive choose).
    init(_ dims: [Int], _ tag: dnnl_format_tag_t) throws(OneDNNError) {
        var md: dnnl_memory_desc_t?
        let d = dims.map(Int64.init)
        try OneDNN.check(dnnl_memory_desc_create_with_tag(&md, Int32(d.count), d, dnnl_f32, tag), "a memory descriptor for \(dims)")
        guard let md else { throw OneDNNError(operation: "a memory descriptor for \(dims)", status: -1) }
        handle = md
    }

    /// A copy of a descriptor a primitive descriptor owns.
    init(copying md: const_dnnl_memory_desc_t?) throws(OneDNNError) {
        var copy: dnnl_memory_desc_t?
        try OneDNN.check(dnnl_memory_desc_clone(&copy, md), "a copy of a memory descriptor")
        guard let copy else { throw OneDNNError(operation: "a copy of a memory descriptor", status: -1) }
        handle = copy
    }

    /// The part of `parent` of size `dims` starting at `offsets`, with the parent's strides (a
    /// channel slice of an NHWC buffer: its pixels lie the parent's channel count apart).
    init(part dims: [Int], at offsets: [Int], of parent: MemoryDescriptor) throws(OneDNNError) {
        var md: dnnl_memory_desc_t?
        try OneDNN.check(dnnl_memory_desc_create_submemory(&md, parent.handle, dims.map(Int64.init), offsets.map(Int64.init)),
                         "a part \(dims) at \(offsets) of a memory descriptor")
        guard let md else { throw OneDNNError(operation: "a part of a memory descriptor", status: -1) }
        handle = md
    }

    deinit { dnnl_memory_desc_destroy(handle) }

    func isEqual(to other: MemoryDescriptor) -> Bool { dnnl_memory_desc_equal(handle, other.handle) != 0 }

    /// For an (N, C, H, W) descriptor: 1 when it is NCHW, b when it is nChw8c or nChw16c with
    /// C a multiple of b (the layouts an `Activation` can be in), else nil.
    func channelBlock(_ dims: [Int]) throws(OneDNNError) -> Int? {
        guard dims.count == 4 else { return nil }
        for (tag, block) in [(dnnl_nchw, 1), (dnnl_nChw8c, 8), (dnnl_nChw16c, 16)] where dims[1] % block == 0 {
            if isEqual(to: try MemoryDescriptor(dims, tag)) { return block }
        }
        return nil
    }

    /// Floats a buffer of this layout needs (blocked layouts pad the channels).
    var floatCount: Int { (dnnl_memory_desc_get_size(handle) + 3) / 4 }
}

/// A oneDNN memory object: a descriptor and a data pointer, which is either oneDNN's own
/// allocation (`owned`) or one set for each use with `bind`.
final class Memory {
    let handle: dnnl_memory_t
    let descriptor: MemoryDescriptor

    init(_ descriptor: MemoryDescriptor, engine: dnnl_engine_t, owned: Bool) throws(OneDNNError) {
        var memory: dnnl_memory_t?
        // DNNL_MEMORY_ALLOCATE is (void *)-1; DNNL_MEMORY_NONE is NULL.
        let allocate = owned ? UnsafeMutableRawPointer(bitPattern: -1) : nil
        try OneDNN.check(dnnl_memory_create(&memory, descriptor.handle, engine, allocate), "a memory object")
        guard let memory else { throw OneDNNError(operation: "a memory object", status: -1) }
        handle = memory
        self.descriptor = descriptor
    }

    deinit { dnnl_memory_destroy(handle) }

    /// Points this memory at `pointer` for the next executions.
    func bind(_ pointer: UnsafeRawPointer) throws(OneDNNError) {
        try OneDNN.check(dnnl_memory_set_data_handle(handle, UnsafeMutableRawPointer(mutating: pointer)), "binding a buffer")
    }
}

/// Primitive attributes, destroyed with this object. Every primitive here is made with
/// `scratchpad_mode_user`: by default oneDNN's scratchpad (the temporary buffer some kernels
/// need, for example the AVX2 weight-gradient kernels' per-thread partial sums) is one buffer
/// shared by every primitive in the process, and a primitive may then only run on the thread
/// that made it. The engine's layers run on whichever thread their network is on, and several
/// networks run at once (a test process, a trainer beside its model checks); with the shared
/// buffer their results corrupted each other (weight gradients off by up to 4x on an AVX2
/// machine). Each `Primitive` now owns its scratchpad.
final class PrimitiveAttributes {
    let handle: dnnl_primitive_attr_t

    init() throws(OneDNNError) {
        var attributes: dnnl_primitive_attr_t?
        try OneDNN.check(dnnl_primitive_attr_create(&attributes), "primitive attributes")
        guard let attributes else { throw OneDNNError(operation: "primitive attributes", status: -1) }
        handle = attributes
        try OneDNN.check(dnnl_primitive_attr_set_scratchpad_mode(handle, dnnl_scratchpad_mode_user), "a scratchpad mode")
    }

    deinit { dnnl_primitive_attr_destroy(handle) }
}

/// A created oneDNN primitive (a convolution, a reorder) with its own scratchpad, destroyed
/// with this object.
final class Primitive {
    let handle: dnnl_primitive_t
    /// The primitive's temporary buffer, when its kernel needs one (see `PrimitiveAttributes`).
    private let scratchpad: Memory?

    /// Creates the primitive from `descriptor` (made with `PrimitiveAttributes`), and destroys
    /// the descriptor.
    init(consuming descriptor: dnnl_primitive_desc_t, _ what: String) throws(OneDNNError) {
        defer { dnnl_primitive_desc_destroy(descriptor) }
        let engine = try OneDNN.requireEngine()
        let scratch = try MemoryDescriptor(copying: dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0))
        scratchpad = scratch.floatCount > 0 ? try Memory(scratch, engine: engine, owned: true) : nil
        var primitive: dnnl_primitive_t?
        try OneDNN.check(dnnl_primitive_create(&primitive, descriptor), what)
        guard let primitive else { throw OneDNNError(operation: what, status: -1) }
        handle = primitive
    }

    /// A reorder (layout conversion) from `source`'s layout to `destination`'s.
    convenience init(reorderFrom source: MemoryDescriptor, to destination: MemoryDescriptor,
                     engine: dnnl_engine_t) throws(OneDNNError) {
        var pd: dnnl_primitive_desc_t?
        let attributes = try PrimitiveAttributes()
        try OneDNN.check(dnnl_reorder_primitive_desc_create(&pd, source.handle, engine, destination.handle, engine,
                                                            attributes.handle), "a reorder")
        guard let pd else { throw OneDNNError(operation: "a reorder", status: -1) }
        try self.init(consuming: pd, "a reorder")
    }

    deinit { dnnl_primitive_destroy(handle) }

    /// Runs the primitive on `stream` with `arguments` (DNNL_ARG_* → memory) and waits for it.
    func execute(_ stream: Stream, _ arguments: [(Int32, Memory)]) throws(OneDNNError) {
        var args = arguments.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        if let scratchpad { args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpad.handle)) }
        OneDNN.useWorkers()
        try OneDNN.check(dnnl_primitive_execute(handle, stream.handle, Int32(args.count), args), "executing a primitive")
        try OneDNN.check(dnnl_stream_wait(stream.handle), "waiting for a primitive")
    }
}

/// A oneDNN execution stream, destroyed with this object. Each layer has its own, so layers of
/// networks on different threads never share one.
final class Stream {
    let handle: dnnl_stream_t

    init(engine: dnnl_engine_t) throws(OneDNNError) {
        var stream: dnnl_stream_t?
        try OneDNN.check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "a stream")
        guard let stream else { throw OneDNNError(operation: "a stream", status: -1) }
        handle = stream
    }

    deinit { dnnl_stream_destroy(handle) }
}
