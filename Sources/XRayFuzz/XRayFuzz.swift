internal import CFuzzDriver
import FuzzTargets
import Foundation

// The fuzzing harness. Built by `Ops/fuzz` with `-sanitize=fuzzer,address`, libFuzzer drives
// `LLVMFuzzerTestOneInput` with the target named by XRAY_FUZZ_TARGET. Built normally (as
// `swift build` does), `main` replays files through a target or writes the seed corpus:
//
//   xray-fuzz TARGET FILE...        run each file through TARGET (no sanitizers)
//   xray-fuzz --write-seeds DIR     write the seed corpus into DIR/TARGET/
//   xray-fuzz --list                the targets, one a line

/// libFuzzer's entry point: one input through the target XRAY_FUZZ_TARGET names.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = Harness.target else { return -1 }
    target.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

enum Harness {
    static let target: FuzzTarget? = {
        let name = ProcessInfo.processInfo.environment["XRAY_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget.named(name) else {
            FileHandle.standardError.write(Data("XRAY_FUZZ_TARGET must name a target: \(FuzzTarget.all.map(\.name).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return target
    }()
}

@main
struct XRayFuzz {
    static func main() {
        if ProcessInfo.processInfo.environment["XRAY_FUZZ_TARGET"] != nil {
            // Fuzzing: hand the arguments to libFuzzer (when this main, not libFuzzer's, runs).
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            let status = xray_fuzz_run_driver(&argc, &argv) { data, size in testOneInput(data, size) }
            guard status == -1 else { exit(status) }
            FileHandle.standardError.write(Data("xray-fuzz: built without libFuzzer; build it with Ops/fuzz\n".utf8))
            exit(2)
        }
        do { try run() } catch {
            FileHandle.standardError.write(Data("xray-fuzz: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "--list":
            for t in FuzzTarget.all { print("\(t.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(t.summary)") }
        case "--write-seeds":
            guard arguments.count == 2 else { throw Usage() }
            let root = URL(fileURLWithPath: arguments[1])
            let repository = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            for (target, name, bytes) in try FuzzCorpus.seeds(repository: repository) {
                let folder = root.appendingPathComponent(target)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try Data(bytes).write(to: folder.appendingPathComponent(name))
                print("\(target)/\(name): \(bytes.count) bytes")
            }
        case let name? where FuzzTarget.named(name) != nil:
            guard let target = FuzzTarget.named(name) else { throw Usage() }
            for path in arguments.dropFirst() {
                target.run([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
            }
            print("\(name): \(arguments.count - 1) inputs, none crashed")
        default:
            throw Usage()
        }
    }

    struct Usage: Error, CustomStringConvertible {
        var description: String {
            "usage: xray-fuzz TARGET FILE... | --write-seeds DIR | --list (targets: \(FuzzTarget.all.map(\.name).joined(separator: ", ")))"
        }
    }
}
