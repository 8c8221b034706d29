import NIOCore
import NIOHTTP1

/// HTTP/1.1's rule for a request that does not keep its connection alive: an
/// HTTP/1.0 request without `Connection: keep-alive` (RFC 9112 §9.3), or a
/// request whose `Connection` header has the `close` option in any case or
/// beside others. The server answers it, says `Connection: close` in the
/// response (§9.6), and closes.
///
/// The request reaches the router as a version-less `HTTPRequest` (NIO's
/// conversion drops the version), and Hummingbird closes after a response only
/// when the request's `Connection` header is exactly `close`. This handler, just
/// before that conversion, makes the header exactly that for every request that
/// does not keep its connection alive (and the event-loop path leaves such a
/// request to the router). Before, such a connection stayed open until the
/// request timeout, though the parser would take no request after it.
final class ClosingRequests: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// For each request read and not yet answered, in order: whether it closes its connection.
    private var closing: CircularBuffer<Bool> = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let closes = !head.isKeepAlive
        closing.append(closes)
        guard closes else {
            context.fireChannelRead(data)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: "close")
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // An interim (1xx) response is not the request's answer.
        guard case .head(var head) = unwrapOutboundIn(data), head.status.code >= 200, let closes = closing.popFirst(), closes else {
            context.write(data, promise: promise)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}
