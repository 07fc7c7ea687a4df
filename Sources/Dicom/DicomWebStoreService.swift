import Foundation
public import Logging
import MultipartKit
import NIOCore
import NIOHTTP1
import NIOPosix

/// DICOMweb STOW-RS (PS3.18 10.5): `POST /studies` (or `/studies/{study}`) with a
/// `multipart/related; type="application/dicom"` body, one Part 10 object per part. Each object
/// goes to the handler; the answer is the standard DICOM JSON store response (stored instances
/// in ReferencedSOPSequence, failed ones in FailedSOPSequence with their reason) with 200 when
/// all were stored, 202 when some were, 409 when none was, and 503 (retry) when the handler said
/// it could not take them now (the broker is away).
public final class DicomWebStoreService: Sendable {
    /// What became of one object.
    public struct Result: Sendable {
        /// The DIMSE-style status: 0x0000 stored, 0xA700 out of resources (retry), 0xC000 cannot understand...
        public var status: DicomStoreService.Status
        /// The instance as the sender named it (answered to the sender only).
        public var sopClassUID: String?
        public var sopInstanceUID: String?

        public init(status: DicomStoreService.Status, sopClassUID: String?, sopInstanceUID: String?) {
            self.status = status
            self.sopClassUID = sopClassUID
            self.sopInstanceUID = sopInstanceUID
        }
    }

    public typealias Handler = @Sendable (_ bytes: [UInt8], _ peer: String) async -> Result

    public let host: String
    public let port: Int
    /// The largest request body accepted (413 beyond).
    public let maxBodyBytes: Int
    private let handler: Handler
    private let logger: Logger

    public init(host: String, port: Int, maxBodyBytes: Int, logger: Logger, handler: @escaping Handler) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        self.handler = handler
    }

    /// Binds and serves until the task is cancelled.
    public func run() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        logger.info("DICOMweb STOW-RS at http://\(host):\(server.channel.localAddress?.port ?? port)/studies")
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { [self] in
                            do {
                                try await serve(connection)
                            } catch {
                                logger.debug("STOW-RS connection ended: \(error)")
                            }
                        }
                    }
                }
            }
        } onCancel: {
            server.channel.close(promise: nil)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        let peer = connection.channel.remoteAddress?.ipAddress ?? ""
        try await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            var tooLarge = false
            for try await part in inbound {
                switch part {
                case .head(let h):
                    head = h
                    body.clear()
                    tooLarge = false
                case .body(var chunk):
                    if body.readableBytes + chunk.readableBytes > maxBodyBytes { tooLarge = true } else { body.writeBuffer(&chunk) }
                case .end:
                    guard let request = head else { continue }
                    let (status, contentType, bytes) = tooLarge
                        ? (.payloadTooLarge, "text/plain", Array("the request exceeds \(maxBodyBytes) bytes\n".utf8))
                        : await respond(request, body: body, peer: peer)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: contentType)
                    headers.add(name: "Content-Length", value: String(bytes.count))
                    if status == .serviceUnavailable { headers.add(name: "Retry-After", value: "10") }
                    if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                    try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                    try await outbound.write(.end(nil))
                    if !request.isKeepAlive { return }
                    head = nil
                }
            }
        }
    }

    /// The response to one whole request.
    func respond(_ request: HTTPRequestHead, body: ByteBuffer, peer: String) async -> (HTTPResponseStatus, String, [UInt8]) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        guard request.method == .POST, path == "/studies" || path.hasPrefix("/studies/") else {
            return (.notFound, "text/plain", Array("STOW-RS is POST /studies\n".utf8))
        }
        let contentType = request.headers["Content-Type"].first ?? ""
        guard let boundary = Self.boundary(contentType) else {
            return (.unsupportedMediaType, "text/plain",
                    Array("expected Content-Type: multipart/related; type=\"application/dicom\"; boundary=...\n".utf8))
        }
        let parts = Self.parts(body, boundary: boundary)
        guard !parts.isEmpty else { return (.badRequest, "text/plain", Array("no complete part in the multipart body\n".utf8)) }
        var results: [Result] = []
        for part in parts {
            let type = part.headers["content-type"]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            if type != "application/dicom" {
                results.append(Result(status: .cannotUnderstand, sopClassUID: nil, sopInstanceUID: nil))
                continue
            }
            results.append(await handler(part.body, peer))
        }
        let stored = results.filter { $0.status == .success }.count
        let status: HTTPResponseStatus = if stored == results.count {
            .ok
        } else if stored > 0 {
            .accepted
        } else if results.contains(where: { $0.status == .outOfResources }) {
            .serviceUnavailable
        } else {
            .conflict
        }
        return (status, "application/dicom+json", Self.storeResponse(results))
    }

    /// The boundary of a `multipart/related` content type whose type is DICOM (or unstated).
    static func boundary(_ contentType: String) -> String? {
        let fields = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.first?.lowercased() == "multipart/related" else { return nil }
        var parameters: [String: String] = [:]
        for field in fields.dropFirst() {
            let pair = field.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            parameters[pair[0].lowercased()] = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        if let type = parameters["type"], type.lowercased() != "application/dicom" { return nil }
        guard let boundary = parameters["boundary"], !boundary.isEmpty, boundary.count <= 70 else { return nil }
        return boundary
    }

    /// The complete parts of a multipart body (a part cut off by the end of the body is left out).
    static func parts(_ body: ByteBuffer, boundary: String) -> [(headers: [String: String], body: [UInt8])] {
        var parts: [(headers: [String: String], body: [UInt8])] = []
        var headers: [String: String] = [:]
        var current: [UInt8] = []
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in headers[name.lowercased()] = value }
        parser.onBody = { buffer in current += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        parser.onPartComplete = {
            parts.append((headers, current))
            headers = [:]
            current = []
        }
        do {
            try parser.execute(body)
        } catch {
            return parts  // a syntax error ends the body; the parts before it stand
        }
        return parts
    }

    /// The DICOM JSON store response (PS3.18 Table 10.5.3-1).
    static func storeResponse(_ results: [Result]) -> [UInt8] {
        func item(_ result: Result, failed: Bool) -> [String: Any] {
            var item: [String: Any] = [:]
            if let c = result.sopClassUID { item["00081150"] = ["vr": "UI", "Value": [c]] }
            if let i = result.sopInstanceUID { item["00081155"] = ["vr": "UI", "Value": [i]] }
            if failed { item["00081197"] = ["vr": "US", "Value": [Int(result.status.code)]] }
            return item
        }
        var response: [String: Any] = [:]
        let referenced = results.filter { $0.status == .success }.map { item($0, failed: false) }
        let failed = results.filter { $0.status != .success }.map { item($0, failed: true) }
        if !referenced.isEmpty { response["00081199"] = ["vr": "SQ", "Value": referenced] }
        if !failed.isEmpty { response["00081198"] = ["vr": "SQ", "Value": failed] }
        return (try? JSONSerialization.data(withJSONObject: response, options: [.sortedKeys])).map { [UInt8]($0) } ?? Array("{}".utf8)
    }
}
