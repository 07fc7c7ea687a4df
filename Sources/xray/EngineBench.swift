import ArgumentParser
import Engine
import Foundation

/// `xray bench engine`: inference and training throughput of the engine's architectures.
struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Inference (batch 1 and 16) and training (batch 16) images/s and GFLOP/s at 224x224.")

    @Option(help: "Architectures, comma-separated.") var archs: String = "small-cnn,resnet18,densenet121"
    @Option(help: "Seconds to spend on each measurement (after one warm-up batch).") var seconds: Double = 4
    @Option(help: "Input size (square).") var size: Int = 224
    @Option(help: "Engine worker threads (default: every core).") var threads: Int?
    @Option(help: "Measurements, comma-separated: infer1, infer16, train16.") var modes: String = "infer1,infer16,train16"
    @Option(help: """
        Convolutions: onednn (Winograd for the 3x3 layers where it gains, in training only where \
        oneDNN runs on AVX2; oneDNN's direct convolutions for the rest), direct (oneDNN's direct \
        convolutions only), or openblas (im2col and sgemm).
        """)
    var convolutions: String = "onednn"
    @Flag(help: "One JSON line per architecture instead of the table (for Ops/bench-engine).") var json = false

    func run() async throws {
        if let threads { EngineSettings.threads = threads }
        switch convolutions {
        case "onednn": EngineSettings.oneDNN = true; EngineSettings.winograd = true
        case "direct": EngineSettings.oneDNN = true; EngineSettings.winograd = false
        case "openblas": EngineSettings.oneDNN = false
        default: throw ValidationError("--convolutions takes onednn, direct or openblas, not \(convolutions)")
        }
        if !json {
            print("engine benchmark: \(size)x\(size), \(EngineSettings.threads) worker threads, \(seconds) s per figure")
            print("arch          GFLOP/img  infer b1 img/s (GFLOP/s)  infer b16 img/s (GFLOP/s)  train b16 img/s (GFLOP/s)")
        }
        for name in archs.split(separator: ",") {
            let arch = try parseArchitecture(String(name))
            let network = Network(architecture: arch, labels: 14, seed: 1)
            let gflop = network.forwardFLOPs(height: size, width: size) / 1e9
            let chosen = Set(modes.split(separator: ",").map(String.init))
            let b1 = chosen.contains("infer1") ? measure(network, batch: 1, training: false) : .nan
            let b16 = chosen.contains("infer16") ? measure(network, batch: 16, training: false) : .nan
            let train = chosen.contains("train16") ? measure(network, batch: 16, training: true) : .nan
            if json {
                let figures = ["infer1": b1, "infer16": b16, "train16": train].filter { $0.value.isFinite }
                    .map { "\"\($0.key)\": \(String(format: "%.3f", $0.value))" }.sorted().joined(separator: ", ")
                print("{\"arch\": \"\(arch.rawValue)\", \"gflop\": \(String(format: "%.4f", gflop)), \"threads\": \(EngineSettings.threads), \"onednn_vectors\": \"\(EngineSettings.oneDNNVectors)\", \(figures)}")
                continue
            }
            func cell(_ rate: Double, _ flopsPerImage: Double) -> String {
                String(format: "%7.1f (%5.0f)", rate, rate * flopsPerImage)
            }
            print(arch.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(format: "%8.2f   ", gflop) + cell(b1, gflop) + "            " + cell(b16, gflop)
                + "             " + cell(train, 3 * gflop))
        }
        if json { return }
        print("""
            training GFLOP/s counts 3x the forward FLOPs (forward, input and weight gradients).
            convolutions: \(!EngineSettings.oneDNN ? "im2col + OpenBLAS" : EngineSettings.winograd ? "oneDNN and Winograd" : "oneDNN direct"), \
            oneDNN on \(EngineSettings.oneDNNVectors). \
            Ops/bench-engine runs this beside PyTorch and ONNX Runtime on the same machine.
            """)
    }

    /// Images per second of forward passes (inference) or forward + loss + backward + Adam step.
    func measure(_ network: Network, batch: Int, training: Bool) -> Double {
        let shape = Shape(n: batch, c: 3, h: size, w: size)
        var rng = SeededGenerator(seed: 2)
        let input = UnsafeMutablePointer<Float>.allocate(capacity: shape.count)
        defer { input.deallocate() }
        for i in 0..<shape.count { input[i] = rng.normal() }
        let x = Activation(data: input, shape: shape)
        let targets = (0..<(batch * network.labelCount)).map { _ in Float(rng.next() % 2) }
        let loss = SigmoidCrossEntropy(labels: network.labelCount)
        let optimizer = Optimizer(OptimizerSettings(kind: .adam), parameterCount: network.store.count)
        func step() {
            if training {
                network.store.zeroGradients()
                _ = loss.forward(network.forward(x, mode: .training), targets: targets)
                network.backward(loss.backward())
                optimizer.apply(to: network.store, learningRate: 1e-4)
            } else {
                _ = network.forward(x, mode: .inference)
            }
        }
        step() // warm-up: buffers grow to size here
        var images = 0
        let start = ContinuousClock.now
        repeat {
            step()
            images += batch
        } while (ContinuousClock.now - start) < .seconds(seconds)
        return Double(images) / ((ContinuousClock.now - start) / .seconds(1))
    }
}
