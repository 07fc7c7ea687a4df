public import Dicom
import Dispatch
public import KafkaIO
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// `xray gateway`: the DICOM edge. Modalities and PACS send studies with C-STORE; each object
/// is filtered, de-identified and published to xray.raw (`DicomIntake`), and the sender's
/// C-STORE answer waits for the broker's acknowledgement — a success means the image will be
/// triaged. With the broker away the answer is "refused: out of resources", which a sender
/// retries: nothing is acknowledged that was not published.
///
/// Metrics: `xray_gateway_objects_total{outcome, reason}` — outcome `published`, `skipped`
/// (acknowledged, not triaged: a CT, a lateral view), `refused` (unreadable), `failed` (the
/// broker did not acknowledge; the sender was told to retry).
public struct DicomGateway: Service {
    public var store: DicomStoreService.Configuration
    public var intake: DicomIntake
    let producer: KafkaProducer
    let map: ReidentificationMap?
    let logger: Logger

    public init(store: DicomStoreService.Configuration, intake: DicomIntake, producer: KafkaProducer,
                reidentificationMap: ReidentificationMap?, logger: Logger) {
        self.store = store
        self.intake = intake
        self.producer = producer
        self.map = reidentificationMap
        self.logger = logger
    }

    /// What one received object came to, and the status the sender gets.
    public func receive(_ request: DicomStoreService.Request) async -> DicomStoreService.Status {
        let sender = "\(request.callingAETitle)@\(request.peer)"
        switch intake.prepare(request.bytes, source: request.callingAETitle) {
        case .skip(let skip):
            count("skipped", skip.reason)
            logger.info("not published (acknowledged): \(skip.detail)", metadata: ["sender": "\(sender)"])
            return .success
        case .refuse(let code, let reason):
            count("refused", code)
            logger.warning("refused an object: \(reason)", metadata: ["sender": "\(sender)"])
            return .cannotUnderstand
        case .publish(let record, let deidentification):
            let id = record.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
            do {
                try map?.record(deidentification.originals)
            } catch {
                count("failed", "reidentification-map")
                logger.error("cannot write the re-identification map (\(error)); the sender will retry")
                return .outOfResources
            }
            do {
                _ = try await producer.send(record)
                count("published", "")
                logger.debug("published \(id)", metadata: ["sender": "\(sender)"])
                return .success
            } catch {
                count("failed", "broker")
                logger.warning("the broker did not acknowledge \(id): \(error); answered out of resources, the sender will retry",
                               metadata: ["sender": "\(sender)"])
                return .outOfResources
            }
        }
    }

    private func count(_ outcome: String, _ reason: String) {
        Counter(label: "xray_gateway_objects_total", dimensions: [("outcome", outcome), ("reason", reason)]).increment()
    }

    /// Serves C-STORE until graceful shutdown, then closes the producer.
    public func run() async throws {
        let gateway = self
        let service = try DicomStoreService(configuration: store) { request in
            // The C-STORE thread waits here for the broker: the DIMSE answer is the acknowledgement.
            Self.waitFor { await gateway.receive(request) }
        }
        logger.info("DICOM C-STORE service \(store.aeTitle) on port \(store.port); callers: \(store.callers.isEmpty ? "any" : store.callers.joined(separator: ", "))")
        try await withGracefulShutdownHandler {
            try await service.run()
        } onGracefulShutdown: {
            service.stop()
        }
        await producer.close()
    }

    /// Runs `work` on the concurrency pool and blocks the calling (non-pool) thread until it ends.
    static func waitFor(_ work: @escaping @Sendable () async -> DicomStoreService.Status) -> DicomStoreService.Status {
        let result = Mutex<DicomStoreService.Status>(.outOfResources)
        let done = DispatchSemaphore(value: 0)
        Task {
            let status = await work()
            result.withLock { $0 = status }
            done.signal()
        }
        done.wait()
        return result.withLock { $0 }
    }
}
