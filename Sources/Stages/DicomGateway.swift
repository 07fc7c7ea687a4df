public import Dicom
import Dispatch
public import KafkaIO
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// `xray gateway`: the DICOM edge. Modalities and PACS send studies with C-STORE (or DICOMweb
/// STOW-RS when `stow` is set); each object is filtered, de-identified and published to xray.raw
/// (`DicomIntake`), and the sender's answer waits for the broker's acknowledgement — a success
/// means the image will be triaged. With the broker away the answer is "refused: out of resources", which a sender
/// retries: nothing is acknowledged that was not published.
///
/// Metrics: `xray_gateway_objects_total{outcome, reason}` — outcome `published`, `skipped`
/// (acknowledged, not triaged: a CT, a lateral view), `refused` (unreadable), `failed` (the
/// broker did not acknowledge; the sender was told to retry).
public struct DicomGateway: Service {
    public var store: DicomStoreService.Configuration
    /// Where STOW-RS listens (host, port), if at all, and the largest request it takes.
    public var stow: (host: String, port: Int, maxBodyBytes: Int)?
    public var intake: DicomIntake
    let producer: KafkaProducer
    let map: ReidentificationMap?
    let logger: Logger

    public init(store: DicomStoreService.Configuration, stow: (host: String, port: Int, maxBodyBytes: Int)? = nil,
                intake: DicomIntake, producer: KafkaProducer, reidentificationMap: ReidentificationMap?, logger: Logger) {
        self.store = store
        self.stow = stow
        self.intake = intake
        self.producer = producer
        self.map = reidentificationMap
        self.logger = logger
    }

    /// What one received object came to, and the status the sender gets. `source` (the
    /// calling AE title, or `stow-rs`) goes into the record's `xray.source`.
    public func receive(_ bytes: [UInt8], source: String, peer: String) async -> DicomStoreService.Status {
        let sender = "\(source)@\(peer)"
        switch intake.prepare(bytes, source: source) {
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

    /// The STOW-RS answer for one object: its status, and its SOP class and instance as the
    /// sender named them (the response goes back to the sender only).
    public func receiveWeb(_ bytes: [UInt8], peer: String) async -> DicomWebStoreService.Result {
        let object = try? DicomObject(bytes: bytes)
        let status = await receive(bytes, source: "stow-rs", peer: peer)
        return DicomWebStoreService.Result(status: status, sopClassUID: object?[.sopClassUID], sopInstanceUID: object?[.sopInstanceUID])
    }

    /// Serves C-STORE (and STOW-RS) until graceful shutdown, then closes the producer.
    public func run() async throws {
        let gateway = self
        let service = try DicomStoreService(configuration: store) { request in
            // The C-STORE thread waits here for the broker: the DIMSE answer is the acknowledgement.
            Self.waitFor { await gateway.receive(request.bytes, source: request.callingAETitle, peer: request.peer) }
        }
        logger.info("DICOM C-STORE service \(store.aeTitle) on port \(store.port); callers: \(store.callers.isEmpty ? "any" : store.callers.joined(separator: ", "))")
        let web = stow.map { stow in
            DicomWebStoreService(host: stow.host, port: stow.port, maxBodyBytes: stow.maxBodyBytes, logger: logger) { bytes, peer in
                await gateway.receiveWeb(bytes, peer: peer)
            }
        }
        do {
            try await serve(service, web)
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
    }

    private func serve(_ service: DicomStoreService, _ web: DicomWebStoreService?) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withGracefulShutdownHandler {
                    try await service.run()
                } onGracefulShutdown: {
                    service.stop()
                }
            }
            if let web {
                group.addTask { try await cancelWhenGracefulShutdown { try await web.run() } }
            }
            // Either service ending ends the gateway: a gateway half up would mislead senders.
            _ = try await group.next()
            service.stop()
            group.cancelAll()
            try await group.waitForAll()
        }
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
