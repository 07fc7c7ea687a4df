internal import COpenBLAS
import Synchronization

/// The only door to OpenBLAS. Row-major matrices throughout.
///
/// OpenBLAS runs single-threaded here and the engine splits each product across its own
/// workers (`Parallel`): OpenBLAS's idle threads spin between calls, and would fight the
/// engine's workers for the cores during the memory-bound work between products.
enum BLAS {
    /// C (m×n) = alpha · op(A) · op(B) + beta · C on the calling thread, where op(A) is m×k
    /// and op(B) is k×n. `lda`, `ldb`, `ldc` are the row strides of A, B and C as stored.
    @inline(__always)
    static func serialGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// The same product split across the engine's workers along C's longer side (rows of
    /// op(A), or columns of op(B)); each worker computes its own block of C.
    static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                     alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        configure
        let workers = Parallel.workers
        guard workers > 1, m * n * k >= 1 << 18 else {
            serialGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let splitRows = m >= n
        let length = splitRows ? m : n
        // Blocks of whole multiples of 16 keep OpenBLAS's micro-kernels on full tiles.
        let block = max(16, ((length + workers - 1) / workers + 15) / 16 * 16)
        let blocks = (length + block - 1) / block
        Parallel.forEach(blocks) { index in
            let start = index * block, size = min(block, length - start)
            if splitRows {
                serialGemm(transA: transA, transB: transB, m: size, n: n, k: k, alpha: alpha,
                           a: transA ? a + start : a + start * lda, lda: lda, b: b, ldb: ldb,
                           beta: beta, c: c + start * ldc, ldc: ldc)
            } else {
                serialGemm(transA: transA, transB: transB, m: m, n: size, k: k, alpha: alpha,
                           a: a, lda: lda, b: transB ? b + start * ldb : b + start, ldb: ldb,
                           beta: beta, c: c + start, ldc: ldc)
            }
        }
    }

    /// Makes OpenBLAS single-threaded, once. (Measured once against OpenBLAS's own two threads:
    /// ResNet-18 the same, small-CNN training slower with OpenBLAS's threads (16 vs 18.5 img/s),
    /// small-CNN inference faster with them (89 vs 78 img/s).)
    static let configure: Void = { openblas_set_num_threads(1) }()
}

/// Engine-wide settings.
public enum EngineSettings {
    /// Worker threads for one forward or backward pass (matrix products, im2col, normalisation,
    /// pooling). Defaults to every core.
    public static var threads: Int {
        get { Parallel.workers }
        set { Parallel.workers = max(1, newValue) }
    }

    private static let oneDNNEnabled = Atomic<Bool>(true)

    private static let winogradEnabled = Atomic<Bool>(true)

    /// Whole-network inference computes 3x3, stride-1 convolutions with enough output tiles by
    /// Winograd's F(4x4, 3x3) (`WinogradConvolution`; on by default), and so does training
    /// where oneDNN runs on AVX2 (`TrainingConvolution.winogradPays`). Off, oneDNN's direct
    /// convolution computes them. Takes effect for batch shapes not yet planned.
    public static var winograd: Bool {
        get { winogradEnabled.load(ordering: .relaxed) }
        set { winogradEnabled.store(newValue, ordering: .relaxed) }
    }

    /// The vector instructions oneDNN's kernels use here, for benchmark reports: "AVX-512" or
    /// "AVX2 or less" (`ONEDNN_MAX_CPU_ISA` can hold them below what the processor has). Winograd
    /// takes narrower convolutions with AVX2 (`WinogradConvolution.gains`).
    public static var oneDNNVectors: String { OneDNN.usesAVX512 ? "AVX-512" : "AVX2 or less" }

    /// Convolutions through oneDNN (on by default; off computes them with im2col and
    /// OpenBLAS, in inference and training). A convolution oneDNN refuses is computed so either way.
    public static var oneDNN: Bool {
        get { oneDNNEnabled.load(ordering: .relaxed) && OneDNN.engine != nil }
        set { oneDNNEnabled.store(newValue, ordering: .relaxed) }
    }
}
