import NIOCore
import NIOHTTP1

/// HTTP/1.1's rules for a request that does not keep its connection alive, and
/// for an HTTP/1.0 request, whose client may not understand what only HTTP/1.1
/// has (RFC 9112 §9.3, §9.6, §C.2).
///
/// - A request that does not keep its connection alive — HTTP/1.0 without
///   `Connection: keep-alive`, or a `Connection` header with the `close` option
///   in any case or beside others — is answered with `Connection: close`, and
///   the connection is closed. Hummingbird closes after a response only when
///   the request's header is exactly `close`, and the request reaches it
///   without its version (NIO's conversion drops it), so this handler, just
///   before that conversion, makes the header exactly that (and the
///   event-loop path leaves such a request to the router).
/// - An HTTP/1.0 request is answered in HTTP/1.0 (the conversion writes every
///   response as HTTP/1.1): a body without a length is then not sent chunked,
///   which an HTTP/1.0 client cannot read, but delimited by the connection's
///   close, so the connection is closed after it even when the request asked
///   for keep-alive; a kept connection's response says `Connection: keep-alive`.
final class ClosingRequests: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A request read and not yet answered.
    private struct Pending {
        let closes: Bool
        let http10: Bool
    }
    /// The requests read and not yet answered, in order.
    private var pending: CircularBuffer<Pending> = []
    /// Whether the response being written ends with the connection (its body's end is the close).
    private var closeAfterResponse = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let closes = !head.isKeepAlive
        pending.append(Pending(closes: closes, http10: head.version == .http1_0))
        guard closes else {
            context.fireChannelRead(data)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: "close")
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        // An interim (1xx) response is not the request's answer.
        case .head(var head) where head.status.code >= 200:
            guard let request = pending.popFirst() else { break }
            if request.http10 {
                head.version = .http1_0
                if !request.closes, !head.headers.contains(name: "content-length") { closeAfterResponse = true }
            }
            if request.closes || closeAfterResponse {
                head.headers.replaceOrAdd(name: "connection", value: "close")
            } else if request.http10 {
                head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
            } else {
                break  // an HTTP/1.1 request that keeps its connection: the response as it is
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            return
        case .end where closeAfterResponse:
            // Hummingbird keeps the connection (the request asked it to): close it once the body is out.
            closeAfterResponse = false
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            context.write(data, promise: written)
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }
}
