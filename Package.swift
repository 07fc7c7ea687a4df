// swift-tools-version: 6.1
// XRayStream: streaming chest X-ray triage and continuous learning over Apache Kafka.
import PackageDescription

/// The binaries load librdkafka 2.16 from `.deps/lib` (installed by `Ops/setup`) before the
/// system's 2.0.2, which cannot talk to every broker. The rpath reaches `xray` and the test
/// binaries alike; `xray` checks the loaded version at start-up and says what to run if it is old.
let runtimeLibraryPath = Context.packageDirectory + "/.deps/lib"
let rpath: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", runtimeLibraryPath])]

let strict: [SwiftSetting] = [.enableUpcomingFeature("InternalImportsByDefault")]

/// oneDNN's headers and library, unpacked into `.deps/` by `Ops/setup` (there is no Debian package).
let oneDNN: (swift: [SwiftSetting], linker: [LinkerSetting]) = (
    [.unsafeFlags(["-Xcc", "-I" + Context.packageDirectory + "/.deps/include"])],
    [.unsafeFlags(["-L" + runtimeLibraryPath])])

let package = Package(
    name: "XRayStream",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "xray", targets: ["xray"]),
        .executable(name: "xray-fuzz", targets: ["XRayFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
    ],
    targets: [
        // C shims: each imported by exactly one Swift module.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka",
                       providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // libdeflate: the PNG fast path's inflate and CRC-32 (libdeflate-dev).
        .systemLibrary(name: "CDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
        // oneDNN 3.2 (the engine's convolutions): from a pinned PyPI wheel into .deps/ (Ops/setup).
        .systemLibrary(name: "CDNNL"),
        // DCMTK (parse, edit, write, render, the C-STORE service; libdcmtk-dev) and GDCM
        // (JPEG 2000; libgdcm-dev) behind a C interface. DCMTK's pkg-config file is broken on
        // Debian 12 (it requires sndfile), so the libraries are named here.
        .target(name: "CDicom",
                cxxSettings: [.unsafeFlags(["-I/usr/include/gdcm-3.0"])],
                linkerSettings: ["dcmnet", "dcmimgle", "dcmjpeg", "dcmjpls", "dcmdata", "oflog", "ofstd",
                                 "gdcmMSFF", "gdcmDSED", "gdcmCommon", "z"].map { .linkedLibrary($0) }),

        // Sizes and numbers from outside bytes, checked: products and sums that cannot trap,
        // non-finite values found. No dependencies.
        .target(name: "CheckedArithmetic", swiftSettings: strict),
        // What the bytes on each topic mean. No I/O, no C.
        .target(name: "Wire", dependencies: ["CheckedArithmetic"], swiftSettings: strict),
        // librdkafka as Swift: records in, records out, groups, commits, admin. Knows no X-rays.
        .target(name: "KafkaIO",
                dependencies: ["CRdKafka",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "Metrics", package: "swift-metrics"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                swiftSettings: strict),
        // PNG/JPEG decode, resize, crop, normalise. No Kafka.
        .target(name: "Imaging", dependencies: ["CPNG", "CDeflate", "CTurboJPEG", "CheckedArithmetic"], swiftSettings: strict),
        // DICOM: objects, rendering to grey, de-identification with keyed pseudonyms, what a
        // chest-X-ray gateway accepts, the C-STORE and STOW-RS services. No Kafka.
        .target(name: "Dicom",
                dependencies: ["CDicom", "Imaging", "Wire", .product(name: "Crypto", package: "swift-crypto"),
                               .product(name: "MultipartKit", package: "multipart-kit"),
                               .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                               .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // The CNN engine: layers with backward passes over OpenBLAS, inference convolutions through
        // oneDNN, optimisers, architectures, weight files (safetensors, ONNX import). No Kafka; no
        // I/O but weight files.
        .target(name: "Engine", dependencies: ["COpenBLAS", "CDNNL", "CheckedArithmetic"],
                swiftSettings: strict + oneDNN.swift, linkerSettings: oneDNN.linker),
        // The stages: pure transforms plus the runner that owns consume → produce → commit.
        // Model versions on xray.models and xray.models.heads: the codec, the assembler, heads,
        // the follower, the history and registry, model files and their checks. No stage.
        .target(name: "ModelVersions",
                dependencies: ["Wire", "KafkaIO", "Engine", "CZlib", "CheckedArithmetic",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "Metrics", package: "swift-metrics"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                swiftSettings: strict),
        .target(name: "Stages",
                dependencies: ["Wire", "KafkaIO", "Imaging", "Dicom", "Engine", "ModelVersions", "CheckedArithmetic",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "Metrics", package: "swift-metrics"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                swiftSettings: strict),
        // Prometheus metrics over HTTP (`GET /metrics`), served by SwiftNIO. Knows no stage.
        .target(name: "MetricsServer",
                dependencies: [.product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "NIOCore", package: "swift-nio"),
                               .product(name: "NIOPosix", package: "swift-nio"),
                               .product(name: "NIOHTTP1", package: "swift-nio"),
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                swiftSettings: strict),
        // The operator's console: reads the cluster (offsets, groups, predictions, alerts, dead
        // letters, the model registry) and serves a page with SVG plots drawn by the server.
        .target(name: "Console",
                dependencies: ["KafkaIO", "Wire", "ModelVersions", "MetricsServer",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                swiftSettings: strict),
        // The CLI: wiring only.
        .executableTarget(name: "xray",
                          dependencies: ["Stages", "ModelVersions", "Wire", "KafkaIO", "Imaging", "Dicom", "Engine", "MetricsServer", "Console",
                                         .product(name: "Metrics", package: "swift-metrics"),
                                         .product(name: "Prometheus", package: "swift-prometheus"),
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log"),
                                         .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                          swiftSettings: strict, linkerSettings: rpath),

        // The fuzz targets: each parser of outside bytes driven by fuzz input, and the seed
        // corpus (`Tests/Fuzz/`). No Kafka I/O.
        .target(name: "FuzzTargets", dependencies: ["Stages", "ModelVersions", "Wire", "KafkaIO", "Imaging", "Dicom", "Engine"], swiftSettings: strict),
        // The harness: libFuzzer's entry point (Ops/fuzz builds it with -sanitize=fuzzer,address),
        // or a replayer of files and writer of seeds when built normally.
        .target(name: "CFuzzDriver"),
        .executableTarget(name: "XRayFuzz", dependencies: ["FuzzTargets", "CFuzzDriver"], swiftSettings: strict, linkerSettings: rpath),

        // What several test targets share: running programs without holding the cooperative pool.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "KafkaIOTests", dependencies: ["KafkaIO"], linkerSettings: rpath),
        .testTarget(name: "WireTests", dependencies: ["Wire", "CheckedArithmetic"], linkerSettings: rpath),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"],
                    resources: [.copy("Fixtures")], linkerSettings: rpath),
        .testTarget(name: "DicomTests", dependencies: ["Dicom", "Imaging"], exclude: ["Fixtures"], linkerSettings: rpath),
        .testTarget(name: "EngineTests", dependencies: ["Engine"], exclude: ["Reference"], linkerSettings: rpath),
        .testTarget(name: "StagesTests", dependencies: ["Stages", "ModelVersions", "Wire", "Imaging", "Engine"], linkerSettings: rpath),
        .testTarget(name: "ConsoleTests", dependencies: ["Console", "KafkaIO", "Wire", "TestSupport"], linkerSettings: rpath),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets"], linkerSettings: rpath),
        .testTarget(name: "IntegrationTests",
                    dependencies: ["Stages", "ModelVersions", "Wire", "KafkaIO", "Imaging", "Dicom", "TestSupport",
                                   .product(name: "Logging", package: "swift-log")],
                    linkerSettings: rpath),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
