import Foundation
import Testing
@testable import Engine

/// Weight files as a hostile or broken tool could write them: every reader gives a typed
/// error that names the problem, and never traps, hangs or allocates what a field claims.
@Suite("Hostile weight files")
struct HostileWeightFileTests {
    /// A safetensors file with `header` as its JSON header and `body` after it.
    static func safetensors(_ header: String, body: [UInt8] = [], headerLength: UInt64? = nil) -> Data {
        var data = Data()
        withUnsafeBytes(of: (headerLength ?? UInt64(header.utf8.count)).littleEndian) { data.append(contentsOf: $0) }
        data.append(Data(header.utf8))
        data.append(contentsOf: body)
        return data
    }

    static func malformed(_ data: Data) -> String? {
        do { _ = try SafeTensors.decode(data); return nil } catch let error as EngineError {
            if case .malformed(let text) = error { return text }
            return "\(error)"
        } catch { return "\(error)" }
    }

    @Test("safetensors shapes that overflow, are negative or claim more than the file holds are refused")
    func safetensorsShapes() {
        let body = [UInt8](repeating: 0, count: 16)
        let overflow = Self.safetensors(#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#, body: body)
        #expect(Self.malformed(overflow)?.contains("holds more values than the file has bytes") == true)
        let negative = Self.safetensors(#"{"w":{"dtype":"F32","shape":[-4,-1],"data_offsets":[0,16]}}"#, body: body)
        #expect(Self.malformed(negative)?.contains("negative") == true)
        let lying = Self.safetensors(#"{"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#, body: body)
        #expect(Self.malformed(lying) == "tensor w: 16 bytes for 5 F32 values")
        let outside = Self.safetensors(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,17]}}"#, body: body)
        #expect(Self.malformed(outside)?.contains("within the file") == true)
        let backwards = Self.safetensors(#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, body: body)
        #expect(Self.malformed(backwards)?.contains("within the file") == true)
        let deep = Self.safetensors(#"{"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,4],"data_offsets":[0,16]}}"#, body: body)
        #expect(Self.malformed(deep)?.contains("within the file") == true)
        let dtype = Self.safetensors(#"{"w":{"dtype":"C64","shape":[2],"data_offsets":[0,16]}}"#, body: body)
        #expect(throws: EngineError.unsupported("tensor w has dtype C64; this engine reads F32, F16, BF16, F64, I64, I32")) {
            try SafeTensors.decode(dtype)
        }
    }

    @Test("a safetensors header length that lies, a header that is not JSON, or a file cut anywhere is refused")
    func safetensorsFraming() throws {
        #expect(Self.malformed(Data([1, 2, 3])) == "3 bytes is too short for safetensors")
        let huge = Self.safetensors("{}", headerLength: .max)
        #expect(Self.malformed(huge)?.contains("exceeds the file") == true)
        #expect(Self.malformed(Self.safetensors("[1, 2]")) == "the safetensors header is not a JSON object")
        #expect(Self.malformed(Self.safetensors(#"{"__metadata__":{"a":1}}"#)) == "safetensors __metadata__ must map strings to strings")
        let file = SafeTensors.File(tensors: [NamedTensor(name: "a", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]),
                                              NamedTensor(name: "n", shape: [], values: .int64([7]))],
                                    metadata: ["k": "v"])
        let bytes = try SafeTensors.encode(file)
        for cut in 0..<bytes.count {
            #expect(throws: EngineError.self) { try SafeTensors.decode(bytes.prefix(cut)) }
        }
        let decoded = try SafeTensors.decode(bytes)
        #expect(decoded.dtypes == ["a": "F32", "n": "I64"] && decoded.metadata == ["k": "v"])
    }

    @Test("a float statistic stored as integers (or a counter as floats) does not load")
    func bufferKinds() throws {
        let network = Network(architecture: .smallCNN, labels: 1, inputChannels: 1, seed: 1)
        var tensors = network.stateDict()
        let index = try #require(tensors.firstIndex { $0.name.hasSuffix("running_mean") })
        let t = tensors[index]
        tensors[index] = NamedTensor(name: t.name, shape: t.shape, values: .int64(t.floats.map { Int64($0) }))
        #expect(throws: EngineError.incompatible("\(t.name) is an integer tensor in the file; it holds floats")) {
            try Network(architecture: .smallCNN, labels: 1, inputChannels: 1).load(tensors)
        }
    }

    // MARK: ONNX

    /// Protocol-buffer fields, enough to write ONNX models by hand.
    enum Proto {
        static func varint(_ value: UInt64) -> [UInt8] {
            var v = value, out: [UInt8] = []
            repeat {
                out.append(UInt8(v & 0x7F) | (v > 0x7F ? 0x80 : 0))
                v >>= 7
            } while v > 0
            return out
        }
        static func field(_ number: Int, varint value: UInt64) -> [UInt8] { varint(UInt64(number << 3)) + varint(value) }
        static func field(_ number: Int, bytes: [UInt8]) -> [UInt8] { varint(UInt64(number << 3 | 2)) + varint(UInt64(bytes.count)) + bytes }
        static func field(_ number: Int, _ text: String) -> [UInt8] { field(number, bytes: Array(text.utf8)) }

        /// A TensorProto: dims, data type, name, raw data.
        static func tensor(_ name: String, dims: [Int64], type: UInt64 = 1, raw: [UInt8]) -> [UInt8] {
            dims.flatMap { field(1, varint: UInt64(bitPattern: $0)) } + field(2, varint: type) + field(8, name) + field(9, bytes: raw)
        }
        static func node(_ op: String, inputs: [String], outputs: [String]) -> [UInt8] {
            inputs.flatMap { field(1, $0) } + outputs.flatMap { field(2, $0) } + field(4, op)
        }
        /// A ModelProto whose graph has `nodes` and `initializers`.
        static func model(nodes: [[UInt8]], initializers: [[UInt8]]) -> [UInt8] {
            field(7, bytes: nodes.flatMap { field(1, bytes: $0) } + initializers.flatMap { field(5, bytes: $0) })
        }
        static func floats(_ values: [Float]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
    }

    static func importError(_ bytes: [UInt8]) -> EngineError? {
        do { _ = try ONNXImporter.importModel(Data(bytes), architecture: .smallCNN); return nil } catch let e as EngineError { return e } catch {
            Issue.record("not an EngineError: \(error)")
            return nil
        }
    }

    @Test("ONNX tensors whose dims overflow or whose data lies about its size are refused")
    func onnxTensors() {
        let overflow = Proto.model(nodes: [Proto.node("Gemm", inputs: ["x", "w"], outputs: ["y"])],
                                   initializers: [Proto.tensor("w", dims: [1 << 40, 1 << 40, 1 << 40], raw: Proto.floats([1]))])
        guard case .malformed(let text)? = Self.importError(overflow) else { Issue.record("not refused as malformed"); return }
        #expect(text.contains("dims") && text.contains("more than its data holds"))
        let negative = Proto.model(nodes: [], initializers: [Proto.tensor("w", dims: [-2, -2], raw: Proto.floats([1, 2, 3, 4]))])
        #expect(Self.importError(negative).map { if case .malformed = $0 { true } else { false } } == true)
        let lying = Proto.model(nodes: [], initializers: [Proto.tensor("w", dims: [3], raw: Proto.floats([1, 2]))])
        #expect(Self.importError(lying) == .malformed("tensor w: 8 bytes for 3 values of 4 bytes"))
        let half = Proto.model(nodes: [], initializers: [Proto.tensor("w", dims: [3], type: 10, raw: [0, 0])])
        #expect(Self.importError(half) == .malformed("tensor w: 2 bytes for 3 values of 2 bytes"))
    }

    @Test("ONNX nodes with missing inputs or weights of the wrong rank are refused")
    func onnxNodes() {
        let noWeight = Proto.model(nodes: [Proto.node("Conv", inputs: ["x"], outputs: ["y"])], initializers: [])
        #expect(Self.importError(noWeight) == .malformed("a Conv node has 1 inputs; input 1 is missing"))
        let flatConv = Proto.model(nodes: [Proto.node("Conv", inputs: ["x", "w"], outputs: ["y"])],
                                   initializers: [Proto.tensor("w", dims: [4], raw: Proto.floats([1, 2, 3, 4]))])
        #expect(Self.importError(flatConv) == .malformed("Conv weight w is [4], not 4-D"))
        let flatGemm = Proto.model(nodes: [Proto.node("Gemm", inputs: ["x", "w"], outputs: ["y"])],
                                   initializers: [Proto.tensor("w", dims: [4], raw: Proto.floats([1, 2, 3, 4]))])
        #expect(Self.importError(flatGemm) == .malformed("Gemm weight w is [4], not 2-D"))
        let bn = Proto.model(nodes: [Proto.node("BatchNormalization", inputs: ["x", "s"], outputs: ["y"])], initializers: [])
        #expect(Self.importError(bn) == .malformed("a BatchNormalization node has 2 inputs; input 1 is missing")
                || Self.importError(bn).map { if case .unsupported = $0 { true } else { false } } == true)
        let noHead = Proto.model(nodes: [], initializers: [])
        #expect(Self.importError(noHead) == .incompatible("the ONNX graph does not end in a dense (Gemm/MatMul) head"))
        let zeroHead = Proto.model(nodes: [Proto.node("Gemm", inputs: ["x", "w"], outputs: ["y"])],
                                   initializers: [Proto.tensor("w", dims: [256, 0], raw: [])])  // transposed: (0, 256)
        #expect(Self.importError(zeroHead) == .incompatible("the head has 0 outputs; at most 10000"))
    }

    @Test("protobuf varints that run on, lengths past the end and a model cut at every byte are refused")
    func onnxFraming() {
        #expect(Self.importError([0x3A] + [UInt8](repeating: 0xFF, count: 11)) == .malformed("bad protobuf varint"))
        #expect(Self.importError(Proto.field(7, varint: 0) + [0x3A, 0x7F]) == .malformed("protobuf field 7 runs past the end"))
        #expect(Self.importError([0x3B]) == .malformed("protobuf wire type 3 (groups are not used by ONNX)"))
        #expect(Self.importError([]) == .malformed("no graph in the ONNX model (is it an .onnx file?)"))
        let model = Proto.model(nodes: [Proto.node("Gemm", inputs: ["x", "w", "b"], outputs: ["y"])],
                                initializers: [Proto.tensor("w", dims: [1, 2], raw: Proto.floats([1, 2])),
                                               Proto.tensor("b", dims: [1], raw: Proto.floats([0]))])
        for cut in 0...model.count {
            // Every prefix parses to a typed error (most often incompatible: no small CNN in it).
            #expect(Self.importError(Array(model.prefix(cut))) != nil)
        }
    }

    @Test("ROC with a NaN or infinite score is undefined, not an endless loop")
    func rocNonFinite() {
        #expect(ROC(scores: [0.1, .nan, 0.8, 0.3], truth: [false, true, true, false]) == nil)
        #expect(ROC(scores: [0.1, .infinity], truth: [false, true]) == nil)
        #expect(ROC(scores: [0.1, 0.2], truth: [false]) == nil)
        #expect(ROC.threshold(scores: [.nan, 0.5], truth: [true, false], sensitivity: 0.9) == nil)
        #expect(ROC(scores: [0.1, 0.8], truth: [false, true])?.auc == 1)
    }

    @Test("checkpoint settings out of range are caught before they are used")
    func scheduleAndOptimiserProblems() throws {
        #expect(LearningRateSchedule.constant(1e-3).problem == nil)
        #expect(LearningRateSchedule.constant(.nan).problem != nil)
        #expect(LearningRateSchedule.warmupPlateau(WarmupPlateau(base: 1e-3, warmupSteps: 5, factor: 0.5, patience: 2)).problem == nil)
        let json = #"{"warmupPlateau":{"_0":{"base":0.001,"warmupSteps":5,"warmupStartFraction":0.1,"factor":0.5,"patience":2,"epsilon":0.0001,"cooldown":0,"minimum":0,"current":0.001,"best":1,"wait":9223372036854775807,"cooldownLeft":0}}}"#
        let forged = try JSONDecoder().decode(LearningRateSchedule.self, from: Data(json.utf8))
        #expect(forged.problem == "the warm-up/plateau settings or state are out of range")
        #expect(OptimizerSettings(kind: .adam).problem == nil)
        #expect(OptimizerSettings(kind: .adam, beta2: 1).problem != nil)
        #expect(OptimizerSettings(kind: .sgd, weightDecay: .nan).problem != nil)
    }
}
