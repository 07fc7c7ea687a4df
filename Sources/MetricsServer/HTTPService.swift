public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle

/// What a route answers: a status, a content type and the body.
public struct HTTPAnswer: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int = 200, contentType: String, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    public static func text(_ text: String, status: Int = 200) -> HTTPAnswer {
        HTTPAnswer(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }
}

/// A small HTTP/1.1 server as a `Service`: it binds when run, answers each `GET` with what
/// `route` returns for the path and query (404 when nil) and closes on graceful shutdown. The
/// route runs on the connection's event loop, so it must be quick (render from state in memory).
public final class HTTPService: Service {
    public typealias Route = @Sendable (_ path: String, _ query: String?) -> HTTPAnswer?
    public let host: String
    public let port: Int
    private let name: String
    private let mainPath: String
    private let logger: Logger
    private let route: Route

    /// The log says "`name` at http://HOST:PORT`mainPath`" once the server listens.
    public init(host: String, port: Int, name: String, mainPath: String = "/", logger: Logger, route: @escaping Route) {
        self.host = host
        self.port = port
        self.name = name
        self.mainPath = mainPath
        self.logger = logger
        self.route = route
    }

    public func run() async throws {
        let route = route
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RouteHandler(route: route))
                }
            }
            .bind(host: host, port: port).get()
        let actual = channel.localAddress?.port ?? port
        logger.info("\(name) at http://\(host):\(actual)\(mainPath)")
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Answers one HTTP/1.1 request at a time on its connection. Runs on the channel's event loop.
final class RouteHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: HTTPService.Route
    private var request: HTTPRequestHead?

    init(route: @escaping HTTPService.Route) { self.route = route }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = parts.first.map(String.init) ?? head.uri
        let query = parts.count > 1 ? String(parts[1]) : nil
        let answer = head.method == .GET ? route(path, query) ?? .text("not found: \(path)\n", status: 404)
                                         : .text("only GET is served\n", status: 405)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: String(answer.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: answer.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
