internal import CDNNL

/// What an inference convolution applies to its result as it writes it, in order.
enum ConvolutionPostOp {
    /// max(y, 0).
    case relu
    /// y + what the destination held before (a residual connection computed in place).
    case sum
}

/// A forward-inference convolution primitive with bias and the layouts oneDNN chose for it:
/// the layer-by-layer path (`FusedConvolution`) lets it choose every layout, the whole-network
/// path (`InferenceGraph`) fixes the activations to NHWC and lets it choose the weights'.
///
/// source (N, C, H, W) · weights (OC, C, KH, KW) + bias (OC) → destination (N, OC, OH, OW).
struct InferenceConvolution {
    let primitive: Primitive
    let source: MemoryDescriptor, weights: MemoryDescriptor, destination: MemoryDescriptor

    /// The convolution of `geometry` over `batch` images into `outChannels` channels, with its
    /// activations in `activationLayout` (dnnl_format_tag_any lets oneDNN choose).
    init(geometry g: ConvGeometry, batch: Int, outChannels oc: Int, activationLayout: dnnl_format_tag_t,
         postOps: [ConvolutionPostOp]) throws(OneDNNError) {
        let engine = try OneDNN.requireEngine()
        let sourceDims = [batch, g.channels, g.height, g.width], outputDims = [batch, oc, g.outHeight, g.outWidth]
        let anySource = try MemoryDescriptor(sourceDims, activationLayout)
        let anyWeights = try MemoryDescriptor([oc, g.channels, g.kernelH, g.kernelW], dnnl_format_tag_any)
        let anyDestination = try MemoryDescriptor(outputDims, activationLayout)
        let biasDescriptor = try MemoryDescriptor([oc], dnnl_x)

        let attributes = try PrimitiveAttributes()
        if !postOps.isEmpty {
            var chain: dnnl_post_ops_t?
            try OneDNN.check(dnnl_post_ops_create(&chain), "post-ops")
            defer { dnnl_post_ops_destroy(chain) }
            for op in postOps {
                switch op {
                case .relu: try OneDNN.check(dnnl_post_ops_append_eltwise(chain, dnnl_eltwise_relu, 0, 0), "a ReLU post-op")
                case .sum: try OneDNN.check(dnnl_post_ops_append_sum(chain, 1, 0, dnnl_data_type_undef), "a sum post-op")
                }
            }
            try OneDNN.check(dnnl_primitive_attr_set_post_ops(attributes.handle, chain), "setting post-ops")
        }
        var pd: dnnl_primitive_desc_t?
        let strides = [Int64(g.stride), Int64(g.stride)], padding = [Int64(g.padding), Int64(g.padding)]
        try OneDNN.check(dnnl_convolution_forward_primitive_desc_create(
            &pd, engine, dnnl_forward_inference, dnnl_convolution_direct, anySource.handle, anyWeights.handle,
            biasDescriptor.handle, anyDestination.handle, strides, nil, padding, padding, attributes.handle),
            "a convolution of \(sourceDims) by \([oc, g.channels, g.kernelH, g.kernelW])")
        guard let pd else { throw OneDNNError(operation: "a convolution", status: -1) }
        do {
            source = try MemoryDescriptor(copying: dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0))
            weights = try MemoryDescriptor(copying: dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0))
            destination = try MemoryDescriptor(copying: dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0))
        } catch {
            dnnl_primitive_desc_destroy(pd)
            throw error
        }
        primitive = try Primitive(consuming: pd, "a convolution")
    }
}
