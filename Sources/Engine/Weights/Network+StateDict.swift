/// What a weight load did.
public struct WeightLoadReport: Sendable, Equatable {
    /// Tensors copied into the network.
    public var loaded: Int
    /// True when the file's head did not fit the network's labels and the fresh head was kept.
    public var keptFreshHead: Bool
}

extension Network {
    /// Every parameter and buffer under its torchvision state-dict name.
    public func stateDict() -> [NamedTensor] {
        parameters.map { NamedTensor(name: $0.name, shape: $0.shape, floats: $0.values) }
            + buffers.map { b in
                switch b.values {
                case .float32(let v): NamedTensor(name: b.name, shape: b.shape, values: .float32(v))
                case .int64(let v): NamedTensor(name: b.name, shape: b.shape, values: .int64(v))
                }
            }
    }

    /// Copies weights in by name. Every non-head tensor must be present with its exact shape.
    /// The head (`fc` / `classifier`, or CheXNet's `classifier.0`) loads when its shape fits;
    /// otherwise, with `allowHeadMismatch`, the freshly initialised head is kept (transfer
    /// learning from an ImageNet model). Extra tensors in the file are an error, so a file for
    /// another architecture is never half-loaded.
    @discardableResult
    public func load(_ tensors: [NamedTensor], allowHeadMismatch: Bool = false) throws -> WeightLoadReport {
        var byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let head = architecture.headName
        for suffix in ["weight", "bias"] where byName["\(head).\(suffix)"] == nil {
            if let alias = byName.removeValue(forKey: "\(head).0.\(suffix)") { byName["\(head).\(suffix)"] = alias }
        }
        let headNames: Set = ["\(head).weight", "\(head).bias"]
        let headFits = parameters.filter { headNames.contains($0.name) }.allSatisfy { byName[$0.name]?.shape == $0.shape }
        if !headFits && !allowHeadMismatch {
            let found = byName["\(head).weight"].map { "\($0.shape)" } ?? "none"
            throw EngineError.incompatible("the head \(head).weight is \(found) in the file, the network needs \(self.head.weight.shape) (\(labelCount) labels); give matching labels, or allow a fresh head")
        }
        var loaded = 0
        for p in parameters {
            if headNames.contains(p.name) && !headFits { continue }
            guard let t = byName.removeValue(forKey: p.name) else {
                throw EngineError.incompatible("the file has no \(p.name) \(p.shape); is it a \(architecture.rawValue)?")
            }
            guard t.shape == p.shape else {
                throw EngineError.incompatible("\(p.name) is \(t.shape) in the file, \(p.shape) in \(architecture.rawValue)")
            }
            _ = UnsafeMutableBufferPointer(start: p.value, count: p.count).update(fromContentsOf: t.floats)
            loaded += 1
        }
        for b in buffers {
            guard let t = byName.removeValue(forKey: b.name) else {
                // Older state dicts lack num_batches_tracked; it only feeds momentum-less batch norm.
                if b.name.hasSuffix("num_batches_tracked") { continue }
                throw EngineError.incompatible("the file has no \(b.name); is it a \(architecture.rawValue)?")
            }
            guard t.shape == b.shape || (b.shape.isEmpty && t.shape == [1]) else {
                throw EngineError.incompatible("\(b.name) is \(t.shape) in the file, \(b.shape) in \(architecture.rawValue)")
            }
            switch (b.values, t.values) {
            case (.float32, .float32(let v)): b.values = .float32(v)
            case (.int64, .int64(let v)): b.values = .int64(v)
            case (.float32, .int64): throw EngineError.incompatible("\(b.name) is an integer tensor in the file; it holds floats")
            case (.int64, .float32): throw EngineError.incompatible("\(b.name) is a float tensor in the file; it counts batches (int64)")
            }
            loaded += 1
        }
        for name in headNames { byName.removeValue(forKey: name) }
        if let extra = byName.keys.sorted().first {
            throw EngineError.incompatible("the file has \(byName.count) tensor(s) \(architecture.rawValue) does not, first \(extra)")
        }
        return WeightLoadReport(loaded: loaded, keptFreshHead: !headFits)
    }
}
