internal import CDNNL
import Foundation

/// The door to oneDNN: its CPU engine, the size of its thread team, and its status codes as
/// Swift errors. Only this folder imports CDNNL.
enum OneDNN {
    /// oneDNN's CPU engine, created once; nil (with the reason in `unavailable`) when oneDNN
    /// cannot start, in which case the engine computes every convolution itself.
    nonisolated(unsafe) static let engine: dnnl_engine_t? = {
        var engine: dnnl_engine_t?
        let status = dnnl_engine_create(&engine, dnnl_cpu, 0)
        return status == dnnl_success ? engine : nil
    }()

    /// Whether oneDNN's kernels run on AVX-512 here (512-bit vectors, twice the multiply-adds
    /// per instruction of AVX2's); false on AVX2-only processors and when `ONEDNN_MAX_CPU_ISA`
    /// holds oneDNN below AVX-512.
    static let usesAVX512: Bool = {
        let avx512 = dnnl_cpu_isa_avx512_core.rawValue
        return dnnl_get_effective_cpu_isa().rawValue & avx512 == avx512
    }()

    /// The CPU engine, or the error a plan reports when there is none.
    static func requireEngine() throws(OneDNNError) -> dnnl_engine_t {
        guard let engine else { throw OneDNNError(operation: "creating the CPU engine", status: -1) }
        return engine
    }

    /// Why oneDNN is not used, or nil when it is.
    static var unavailable: String? {
        engine == nil ? "oneDNN's CPU engine could not be created" : nil
    }

    /// Sizes the OpenMP team oneDNN's next primitive on this thread uses to the engine's worker
    /// count (`EngineSettings.threads`).
    static func useWorkers() {
        OpenMPTeam.setThreadCount(Parallel.workers)
    }

    /// Throws unless `status` is success, naming what was attempted.
    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws(OneDNNError) {
        guard status == dnnl_success else { throw OneDNNError(operation: what(), status: Int(status.rawValue)) }
    }
}

/// A oneDNN call that failed: what was attempted and oneDNN's status code (dnnl_status_t).
struct OneDNNError: Error, CustomStringConvertible {
    let operation: String
    let status: Int
    var description: String { "oneDNN: \(operation) failed with status \(status)" }

    /// Weights that are not finite once the batch norm is folded in (not oneDNN's failure: the
    /// layer computes such a convolution itself, so NaN and infinity propagate).
    static let nonFiniteWeights = OneDNNError(operation: "packing weights that are not finite", status: 0)
    var isNonFiniteWeights: Bool { status == 0 }
}
