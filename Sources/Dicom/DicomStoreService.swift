import CDicom
import Foundation

/// A DICOM C-STORE and Verification service provider (DCMTK's DcmSCP underneath): modalities
/// and PACS send images to it with `storescu` or their own DICOM senders. The common storage
/// SOP classes (DCMTK's list for storescu) are accepted in the usual transfer syntaxes; only the
/// configured calling AE titles may associate. One association at a time. Each received object goes to the handler, whose
/// answer is the status the sender gets: a success tells a modality the image is safe.
public final class DicomStoreService: @unchecked Sendable {
    // @unchecked: the C server is driven by one thread (`run`); `stop` only sets an atomic flag.

    public struct Configuration: Sendable {
        public var aeTitle: String
        public var port: UInt16
        /// Calling AE titles allowed to associate; empty allows any.
        public var callers: [String]
        public var maxPDU: UInt32 = 65_536

        public init(aeTitle: String, port: UInt16, callers: [String]) {
            self.aeTitle = aeTitle
            self.port = port
            self.callers = callers
        }
    }

    /// One received object.
    public struct Request: Sendable {
        public var callingAETitle: String
        public var peer: String
        /// The object as a Part 10 file, in the transfer syntax it travelled in.
        public var bytes: [UInt8]
    }

    /// A DIMSE status for the C-STORE response (PS3.7 C.4.2.1.4 and PS3.4 B.2.3).
    public struct Status: Sendable, Equatable, CustomStringConvertible {
        public var code: UInt16
        public static let success = Status(code: 0x0000)
        /// "Refused: out of resources": a sender retries later (the broker is away).
        public static let outOfResources = Status(code: 0xA700)
        /// "Error: cannot understand": the object is not readable DICOM.
        public static let cannotUnderstand = Status(code: 0xC000)
        public var description: String { "0x" + String(code, radix: 16, uppercase: true).leftPadded(4) }
    }

    public typealias Handler = @Sendable (Request) -> Status

    fileprivate final class Box {
        let handler: Handler
        init(_ handler: @escaping Handler) { self.handler = handler }
    }

    private let server: OpaquePointer
    private let box: Unmanaged<Box>
    public let configuration: Configuration

    /// Binds the port; throws when it cannot (in use, no permission).
    public init(configuration: Configuration, handler: @escaping Handler) throws(DicomError) {
        self.configuration = configuration
        let box = Unmanaged.passRetained(Box(handler))
        var error = xd_error()
        let callers = configuration.callers.map { strdup($0) }
        defer { callers.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = callers.map { $0.map { UnsafePointer($0) } }
        let created = pointers.withUnsafeBufferPointer { list in
            xd_store_server_create(configuration.aeTitle, configuration.port, list.baseAddress, list.count,
                                   configuration.maxPDU, dicomStoreHandler, box.toOpaque(), &error)
        }
        guard let created else {
            box.release()
            throw DicomError(error)
        }
        server = created
        self.box = box
    }

    deinit {
        xd_store_server_free(server)
        box.release()
    }

    /// Serves associations on a thread of its own until `stop()`; throws if the service fails.
    public func run() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread { [self] in
                var error = xd_error()
                if xd_store_server_run(server, &error) == 0 {
                    continuation.resume()
                } else {
                    continuation.resume(throwing: DicomError(error))
                }
            }
            thread.name = "dicom-store-scp"
            thread.start()
        }
    }

    /// Stops after the current association (within about a second when idle).
    public func stop() { xd_store_server_stop(server) }
}

/// The C callback: hands the object to the Swift handler held in `context`.
private func dicomStoreHandler(context: UnsafeMutableRawPointer?, calling: UnsafePointer<CChar>?, peer: UnsafePointer<CChar>?,
                               bytes: UnsafePointer<UInt8>?, count: Int) -> UInt16 {
    guard let context, let bytes else { return DicomStoreService.Status.cannotUnderstand.code }
    let box = Unmanaged<DicomStoreService.Box>.fromOpaque(context).takeUnretainedValue()
    let request = DicomStoreService.Request(callingAETitle: calling.map { String(cString: $0) } ?? "",
                                            peer: peer.map { String(cString: $0) } ?? "",
                                            bytes: Array(UnsafeBufferPointer(start: bytes, count: count)))
    return box.handler(request).code
}
