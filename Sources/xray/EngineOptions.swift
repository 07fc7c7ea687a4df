import ArgumentParser
import Engine

/// Options of the stages that run the network (scorer, evaluator, trainer).
struct EngineOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: """
        Compute the wide 3x3 convolutions by Winograd's algorithm: in inference, and in training \
        where oneDNN runs on AVX2 (faster; their transformed weights take 4x the memory of the \
        kernels: ResNet-18 about 200 MB more at peak).
        """)
    var winograd = true

    /// Sets the engine's process-wide settings from these options.
    func apply() {
        EngineSettings.winograd = winograd
    }
}
