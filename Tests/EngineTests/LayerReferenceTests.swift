import Testing
@testable import Engine

/// Each layer's forward and backward against PyTorch on the same weights and inputs
/// (`Reference/make_reference.py`). Tolerance per check: max absolute error ≤ 1e-4, or max
/// relative error ≤ 1e-4 (relative to max(|expected|, 1e-3)); the errors are printed.
@Suite("Layers against PyTorch", .enabled(if: Reference.available, "XRAY_ENGINE_REFERENCE not set: run Ops/test"))
struct LayerReferenceTests {
    func shape(_ t: NamedTensor) -> Shape {
        t.shape.count == 4 ? Shape(n: t.shape[0], c: t.shape[1], h: t.shape[2], w: t.shape[3])
            : Shape(n: t.shape[0], c: t.shape.dropFirst().reduce(1, *))
    }

    /// Runs forward then backward of `layer` on the case's x and dy, comparing y, dx and the
    /// named parameter gradients.
    func run(_ name: String, _ layer: Layer, _ t: [String: NamedTensor], gradients: [(Parameter, String)] = []) {
        let x = Batch(t["x"]!), dy = Batch(t["dy"]!)
        let (y, dx) = x.with { input in
            let y = layer.forward(input, mode: .training).values
            return (y, dy.with { layer.backward($0, inputGradient: true).values })
        }
        expectClose(y, t["y"]!.floats, absolute: 1e-4, relative: 1e-4, "\(name) y")
        expectClose(dx, t["dx"]!.floats, absolute: 1e-4, relative: 1e-4, "\(name) dx")
        for (p, key) in gradients { expectClose(gradient(p), t[key]!.floats, absolute: 1e-4, relative: 1e-4, "\(name) \(key)") }
    }

    @Test("convolutions, per-image and batched paths",
          arguments: ["conv3x3", "conv3x3_stride2", "conv7x7_stem", "conv1x1", "conv1x1_stride2"], [0, 1 << 30])
    func convolution(name: String, batchedPlaneLimit: Int) throws {
        let (t, c) = try Reference.load(name)
        let store = ParameterStore()
        let conv = Conv2D("conv", store, inChannels: c["channels"] as! Int, outChannels: c["out_channels"] as! Int,
                          kernelSize: c["kernel"] as! Int, stride: c["stride"] as! Int, padding: c["padding"] as! Int,
                          bias: c["bias"] as! Bool)
        conv.batchedPlaneLimit = batchedPlaneLimit
        store.allocate()
        set(conv.weight, t["weight"]!.floats)
        if let bias = conv.bias { set(bias, t["bias"]!.floats) }
        run(name, conv, t, gradients: [(conv.weight, "dweight")] + (conv.bias.map { [($0, "dbias")] } ?? []))
    }

    func batchNorm(_ t: [String: NamedTensor]) -> BatchNorm2D {
        let store = ParameterStore()
        let bn = BatchNorm2D("bn", store, channels: 5)
        store.allocate()
        set(bn.weight, t["weight"]!.floats); set(bn.bias, t["bias"]!.floats)
        bn.runningMean.floats = t["running_mean"]!.floats
        bn.runningVar.floats = t["running_var"]!.floats
        return bn
    }

    @Test func batchNormTraining() throws {
        let (t, _) = try Reference.load("batchnorm_training")
        let bn = batchNorm(t)
        run("batch norm (training)", bn, t, gradients: [(bn.weight, "dweight"), (bn.bias, "dbias")])
        expectClose(bn.runningMean.floats, t["new_running_mean"]!.floats, absolute: 1e-5, "running mean")
        expectClose(bn.runningVar.floats, t["new_running_var"]!.floats, absolute: 1e-5, "running var (unbiased)")
    }

    @Test func batchNormInference() throws {
        let (t, _) = try Reference.load("batchnorm_inference")
        let bn = batchNorm(t)
        let y = Batch(t["x"]!).with { bn.forward($0, mode: .inference).values }
        expectClose(y, t["y"]!.floats, absolute: 1e-5, "batch norm (inference) y")
    }

    @Test func poolingAndActivations() throws {
        let layers: [(String, Layer)] = [
            ("maxpool3x3_stride2_pad1", MaxPool2D(kernelSize: 3, stride: 2, padding: 1)),
            ("maxpool2x2", MaxPool2D(kernelSize: 2, stride: 2)),
            ("avgpool2x2", AvgPool2D(kernelSize: 2, stride: 2)),
            ("relu", ReLU()),
            ("global_avgpool", GlobalAvgPool()),
        ]
        for (name, layer) in layers {
            var (t, _) = try Reference.load(name)
            if name == "global_avgpool" { // PyTorch keeps (N, C, 1, 1); so do we.
                t["y"] = NamedTensor(name: "y", shape: [t["y"]!.shape[0], t["y"]!.shape[1]], floats: t["y"]!.floats)
                t["dy"] = NamedTensor(name: "dy", shape: [t["dy"]!.shape[0], t["dy"]!.shape[1]], floats: t["dy"]!.floats)
            }
            run(name, layer, t)
        }
    }

    @Test func dense() throws {
        let (t, _) = try Reference.load("dense")
        let store = ParameterStore()
        let dense = Dense("fc", store, inFeatures: 7, outFeatures: 5)
        store.allocate()
        set(dense.weight, t["weight"]!.floats); set(dense.bias, t["bias"]!.floats)
        run("dense", dense, t, gradients: [(dense.weight, "dweight"), (dense.bias, "dbias")])
    }

    @Test func sigmoidCrossEntropyWithPositiveWeights() throws {
        let (t, _) = try Reference.load("sigmoid_bce")
        let loss = SigmoidCrossEntropy(labels: 4, positiveWeights: t["pos_weight"]!.floats)
        let z = Batch(t["logits"]!)
        let (value, dz) = z.with { input in (loss.forward(input, targets: t["targets"]!.floats), loss.backward().values) }
        expectClose([value], t["loss"]!.floats, absolute: 1e-6, relative: 1e-6, "loss")
        expectClose(dz, t["dlogits"]!.floats, absolute: 1e-7, relative: 1e-5, "dlogits")
    }
}
