import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import LMDB
import Logging
import NIOCore
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// `struct ucred` of `SO_PEERCRED` (Glibc hides it without `_GNU_SOURCE`): same layout.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = .max
    var gid: UInt32 = .max
}

/// Who may connect, and how much each connection may take.
struct AccessPolicy: Sendable {
    /// The store's owner (root is always allowed too).
    var ownerUID: UInt32
    /// More users allowed (`--allow-uid`).
    var allowedUIDs: Set<UInt32> = []
    /// Groups allowed (`--allow-gid`): the peer's primary group, as `SO_PEERCRED` gives it.
    var allowedGIDs: Set<UInt32> = []
    /// Most open connections in all (`--max-connections`).
    var maxConnections = 4096
    /// Most open connections of one peer process (`--max-connections-per-process`).
    var maxConnectionsPerProcess = 256
    /// Time a client has to send a whole request (head and body), from connecting
    /// or from the end of the previous response (`--request-timeout`): slowloris clients are cut off.
    var requestTimeout: TimeAmount = .seconds(10)

    func allows(uid: UInt32, gid: UInt32) -> Bool {
        uid == 0 || uid == ownerUID || allowedUIDs.contains(uid) || allowedGIDs.contains(gid)
    }
}

/// Open connections, in all and per peer process.
final class ConnectionTable: Sendable {
    private let state = Locked<(total: Int, perProcess: [Int32: Int], refused: Int)>((0, [:], 0))

    /// Counts a new connection; `false` (and nothing counted) when a limit is reached.
    func open(pid: Int32, policy: AccessPolicy) -> Bool {
        state.withLock { s in
            if s.total >= policy.maxConnections || s.perProcess[pid, default: 0] >= policy.maxConnectionsPerProcess {
                s.refused += 1
                return false
            }
            s.total += 1
            s.perProcess[pid, default: 0] += 1
            return true
        }
    }

    func close(pid: Int32) {
        state.withLock { s in
            s.total -= 1
            let left = s.perProcess[pid, default: 1] - 1
            s.perProcess[pid] = left > 0 ? left : nil
        }
    }

    private let lastWarning = Locked<(time: ContinuousClock.Instant?, refusedThen: Int)>((nil, 0))

    /// Whether to log a refusal now (at most once a second, so an offender cannot
    /// flood the log), and how many were refused since the last line.
    func shouldWarn() -> Int? {
        let refused = refused
        return lastWarning.withLock { w -> Int? in
            let now = ContinuousClock.now
            if let time = w.time, now - time < .seconds(1) { return nil }
            defer { w = (now, refused) }
            return refused - w.refusedThen
        }
    }

    /// Open connections now.
    var open: Int { state.withLock { $0.total } }
    /// Connections refused for a limit so far.
    var refused: Int { state.withLock { $0.refused } }
}

/// The first handler of every connection (after HTTP parsing): checks the peer
/// with `SO_PEERCRED`, enforces the connection limits and the request timeout.
///
/// - A peer that is not allowed gets one `403` with the JSON error document, and the connection is closed.
/// - A connection above a limit is closed at once, before anything is read;
///   other connections go on.
/// - A request must arrive whole within ``AccessPolicy/requestTimeout`` of
///   connecting or of the previous response's end, else the connection is closed.
/// - It completes the connection's pipeline: ``ClosingRequests`` before the HTTP
///   conversion when it is added, ``HotPath`` after the connection-state handler at the first read.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let policy: AccessPolicy
    private let table: ConnectionTable
    private let logger: Logger
    private var pid: Int32 = -1
    private var counted = false
    private var allowed = true
    private var peer = "unknown peer"
    private var timer: Scheduled<Void>?
    private var refusing = false
    /// The service whose ``HotPath`` this connection gets, once its pipeline is complete (at the first read).
    private let hotPathCore: ServiceCore?
    private var hotPathAdded = false

    init(policy: AccessPolicy, table: ConnectionTable, logger: Logger, hotPath core: ServiceCore? = nil) {
        self.policy = policy
        self.table = table
        self.logger = logger
        hotPathCore = core
    }

    func handlerAdded(context: ChannelHandlerContext) {
        addClosingRequests(context: context)
        // Answers a client has not read are lost if it is cut off for not reading them; the
        // fast path commits nothing more once this much waits (NIO's default is 64 KiB: about
        // 400 answers).
        try? context.channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: 4 << 10, high: 16 << 10))
        if context.channel.isActive { start(context: context) }
    }

    /// Puts ``ClosingRequests`` before the conversion to version-less requests,
    /// which Hummingbird adds before this handler.
    private func addClosingRequests(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        insertHandler("ClosingRequests", withoutIt: "connections whose request does not keep them alive stay open until the request timeout") {
            try pipeline.addHandler(ClosingRequests(), position: .before(try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)))
        }
    }

    /// Runs `insertion`, which adds a handler to this connection's pipeline. Should it fail, the
    /// connection is still served, without what the handler does: `consequence` is said once per
    /// process and handler, not per connection.
    private func insertHandler(_ name: String, withoutIt consequence: String, _ insertion: () throws -> Void) {
        do {
            try insertion()
        } catch {
            guard Self.warned.withLock({ $0.insert(name).inserted }) else { return }
            logger.warning("\(consequence): the \(name) handler could not be added", metadata: ["error": "\(error)"])
        }
    }
    private static let warned = Locked(Set<String>())

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !counted, pid == -1 else { return }
        pid = 0
        guard let provider = context.channel as? any SocketOptionProvider else {
            admit(context: context, credentials: nil)
            return
        }
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(level: .socket, name: .init(rawValue: SO_PEERCRED))
        future.assumeIsolated().whenComplete { result in
            self.admit(context: context, credentials: try? result.get())
        }
    }

    /// Checks the peer and the limits; without credentials (not a Unix socket) only the limits apply.
    private func admit(context: ChannelHandlerContext, credentials: PeerCredentials?) {
        if let credentials {
            pid = credentials.pid
            peer = "pid \(credentials.pid) uid \(credentials.uid) gid \(credentials.gid)"
            allowed = policy.allows(uid: credentials.uid, gid: credentials.gid)
        } else {
            allowed = false
            peer = "a peer without credentials"
        }
        guard table.open(pid: pid, policy: policy) else {
            if let count = table.shouldWarn() {
                logger.warning("connections refused: too many connections", metadata: ["peer": "\(peer)", "open": "\(table.open)", "refused": "\(count)"])
            }
            context.close(promise: nil)
            return
        }
        counted = true
        armTimer(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        if counted {
            table.close(pid: pid)
            counted = false
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !allowed {
            if case .head = part, !refusing {
                refusing = true
                logger.warning("request refused: peer not allowed", metadata: ["peer": "\(peer)"])
                let body = ByteBuffer(string: ServiceResponses.errorBody(code: "accessDenied", message: "\(peer) may not use this service (allowed: the store's owner, root, --allow-uid, --allow-gid)") + "\n")
                var head = HTTPResponse(status: .forbidden)
                head.headerFields[.contentType] = "application/json"
                head.headerFields[.contentLength] = "\(body.readableBytes)"
                head.headerFields[.connection] = "close"
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.write(wrapOutboundOut(.body(body)), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
            return
        }
        if case .end = part { timer?.cancel() }
        if !hotPathAdded {
            hotPathAdded = true
            addHotPath(context: context)
        }
        context.fireChannelRead(data)
    }

    /// Puts a ``HotPath`` behind Hummingbird's connection-state handler (added after this
    /// one, so only there once the pipeline is complete). Without it, the router answers everything.
    private func addHotPath(context: ChannelHandlerContext) {
        guard let core = hotPathCore else { return }
        let pipeline = context.pipeline.syncOperations
        insertHandler("HotPath", withoutIt: "allocations and frees go through the router") {
            try pipeline.addHandler(HotPath(core: core, waitLimit: policy.requestTimeout), position: .after(try pipeline.handler(type: HTTPConnectionStateHandler.self)))
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            armTimer(context: context)
        }
        context.write(data, promise: promise)
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        let peer = peer
        let logger = logger
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: policy.requestTimeout) {
            logger.info("connection closed: no whole request within the request timeout", metadata: ["peer": "\(peer)"])
            channel.close(promise: nil)
        }
    }
}
