import ArgumentParser
import Dicom
import Foundation
import Imaging
import Stages
import Wire

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks that print figures.", subcommands: [Decode.self, EngineBench.self, ModelHistoryBench.self])

    struct Decode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode + preprocess throughput (PNG/JPEG/DICOM → 3x224x224 tensor) on one core, or on --threads.")

        @Option(help: "A folder of images (default: the NIH 1024x1024 PNGs in ../shared/datasets).")
        var data: String = "../shared/datasets/nih_cxr14_fullres_starter_subset/images"
        @Option(help: "Images to use (read into memory first).") var limit: Int = 100
        @Option(help: "Passes over the images.") var passes: Int = 3
        @Option(help: "Threads decoding in parallel (each takes its own images).") var threads: Int = 1
        @Option(help: "PNG reader: fast (libdeflate and own unfiltering, libpng for the rest) or libpng.")
        var png: String = PNGReader.fast.rawValue
        @Flag(help: "One JSON line of milliseconds per image on one core (for Ops/bench-engine).") var json = false

        func run() async throws {
            let files = try DatasetScanner.scan([data]).prefix(limit)
            let encoded = files.compactMap { FileManager.default.contents(atPath: $0.path).map { [UInt8]($0) } }
            guard !encoded.isEmpty else { throw ValidationError("no images under \(data)") }
            guard let reader = PNGReader(rawValue: png) else { throw ValidationError("--png takes fast or libpng, not \(png)") }
            let decoder = RadiographDecoder(pngReader: reader)
            let spec = PreprocessSpec.imagenet224
            let preprocessor = Preprocessor(resize: spec.resize, crop: spec.crop, mean: spec.mean, std: spec.std)
            let mb = Double(encoded.reduce(0) { $0 + $1.count }) / Double(encoded.count) / 1_048_576
            if !json {
                print("images: \(encoded.count) from \(data) (mean \(String(format: "%.2f", mb)) MB encoded), passes: \(passes), "
                      + "threads: \(threads), PNG reader: \(reader.rawValue)")
            }

            // Warm up once, then time decode and preprocess separately on one thread.
            _ = try encoded.prefix(3).map { try preprocessor.tensor(from: try decoder.decode($0).image) }
            var decodeSeconds = 0.0, preprocessSeconds = 0.0
            for _ in 0..<passes {
                for bytes in encoded {
                    let t0 = ContinuousClock.now
                    let image = try decoder.decode(bytes).image
                    let t1 = ContinuousClock.now
                    _ = try preprocessor.tensor(from: image)
                    decodeSeconds += (t1 - t0) / .seconds(1)
                    preprocessSeconds += (ContinuousClock.now - t1) / .seconds(1)
                }
            }
            let n = Double(encoded.count * passes)
            if json {
                print(String(format: "{\"bench\": \"decode\", \"images\": %d, \"png\": \"%@\", \"decode_ms\": %.3f, \"preprocess_ms\": %.3f, \"chain_ms\": %.3f}",
                             encoded.count, reader.rawValue, decodeSeconds / n * 1000, preprocessSeconds / n * 1000,
                             (decodeSeconds + preprocessSeconds) / n * 1000))
                return
            }
            print(String(format: "one core: decode %.2f ms, preprocess %.2f ms, chain %.2f ms/image → %.1f images/s",
                         decodeSeconds / n * 1000, preprocessSeconds / n * 1000, (decodeSeconds + preprocessSeconds) / n * 1000,
                         n / (decodeSeconds + preprocessSeconds)))

            if threads > 1 {
                let start = ContinuousClock.now
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    for _ in 0..<passes {
                        for (i, bytes) in encoded.enumerated() where i % threads == t {
                            if let image = try? decoder.decode(bytes).image { _ = try? preprocessor.tensor(from: image) }
                        }
                    }
                }
                let seconds = (ContinuousClock.now - start) / .seconds(1)
                print(String(format: "%d threads: %.1f images/s", threads, n / seconds))
            }
            print("Ops/bench-engine runs this beside OpenCV and Pillow on the same images.")
        }
    }
}
