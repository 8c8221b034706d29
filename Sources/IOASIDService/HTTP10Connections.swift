import NIOCore
import NIOHTTP1

/// HTTP/1.0's rule for connections: without `Connection: keep-alive`, the
/// server closes the connection after its response (RFC 9112 §9.3).
///
/// The request reaches the router as a version-less `HTTPRequest` (NIO's
/// conversion drops the version), and Hummingbird closes after a response only
/// when the request says `Connection: close`. This handler, just before that
/// conversion, says it for an HTTP/1.0 request that did not ask to be kept
/// alive: the connection then closes once it is answered (and the event-loop
/// path leaves such a request to the router), instead of staying open until the
/// request timeout.
final class HTTP10Connections: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data), head.version == .http1_0, !head.isKeepAlive else {
            context.fireChannelRead(data)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: "close")
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }
}
