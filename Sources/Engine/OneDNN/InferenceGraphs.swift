/// A network's whole-network inference plans (`InferenceGraph`), one per batch shape seen (the
/// last `maxGraphs`), sharing one set of activation buffers. When oneDNN refuses a graph they
/// stop trying and the network infers layer by layer (`refusal` says why).
final class InferenceGraphs {
    private var graphs: [Shape: InferenceGraph] = [:]
    /// Shapes whose layers give no graph (no convolution comes first).
    private var uncovered: Set<Shape> = []
    private let buffers = (0..<InferenceGraph.bufferCount).map { _ in FloatBuffer() }
    /// The Winograd convolutions' chunk buffers, as many as the graph that needs most.
    private var chunkBuffers: [FloatBuffer] = []
    /// Why whole-network inference is not used, once oneDNN refused it.
    private(set) var refusal: String?
    /// Batch shapes kept at once (a scorer's adaptive batches have up to its batch size).
    static let maxGraphs = 16

    /// Graphs held now.
    var count: Int { graphs.count }

    /// Forgets every graph (the layers they covered changed).
    func removeAll() {
        graphs = [:]; uncovered = []
    }

    /// Convolutions the graph for `shape` runs (0 when there is none).
    func convolutionCount(for shape: Shape) -> Int { graphs[shape]?.convolutionCount ?? 0 }

    /// Of those, the ones computed by Winograd's algorithm.
    func winogradCount(for shape: Shape) -> Int { graphs[shape]?.winogradCount ?? 0 }

    /// The network's output for `x` through a graph over `layers` (the network's layers in
    /// order) and layer by layer after it, or nil when the layers must compute it all: oneDNN
    /// is off or refused, or a convolution's weights are not finite.
    func forward(_ x: Activation, layers: [Layer]) -> Activation? {
        guard refusal == nil, EngineSettings.oneDNN, x.isContiguous, !uncovered.contains(x.shape) else { return nil }
        do {
            let graph: InferenceGraph
            if let found = graphs[x.shape] {
                graph = found
            } else {
                guard let made = try InferenceGraph(layers: layers, shape: x.shape) else {
                    uncovered.insert(x.shape)
                    return nil
                }
                if graphs.count >= Self.maxGraphs { graphs = [:] }
                graphs[x.shape] = made
                graph = made
            }
            while chunkBuffers.count < graph.chunkBufferCount { chunkBuffers.append(FloatBuffer()) }
            let covered = try graph.run(x, buffers: buffers, chunkBuffers: chunkBuffers)
            return graph.remainder.forward(covered, mode: .inference)
        } catch where error.isNonFiniteWeights {
            return nil
        } catch {
            refusal = error.description
            graphs = [:]
            return nil
        }
    }
}
