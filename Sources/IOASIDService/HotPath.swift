import Foundation
import HTTPTypes
import HummingbirdCore
import IOASIDCommandLine
import IOASIDStore
import NIOCore
import NIOHTTPTypes

/// Answers the two requests a VMM makes most — `POST /sets/{sid}/ids` with an
/// empty body or `{}`, and `DELETE /sets/{sid}/ids/{id}` — on the connection's
/// event loop: the operation goes to the store's group-commit writer and the
/// response is written from the commit's completion. The router would answer
/// them the same way, but through two hops of Swift concurrency per request,
/// which cost more CPU than the store operation on a busy host.
///
/// Everything else goes on to the router unchanged, and so do these two
/// whenever the connection has a request of the router's still unanswered, so
/// responses keep the order of the requests. What arrives while one of this
/// handler's is being committed (requests, events, errors) waits until it is
/// answered; reading stops once a megabyte or 1,024 parts wait. While the client
/// does not take its answers (the channel is not writable), nothing more is
/// committed or read, and a request that waits so for the request timeout closes
/// the connection (uncommitted: neither the idle timeout nor the request timer
/// covers a request read whole whose answer has not begun).
///
/// It sits behind Hummingbird's connection-state handler, which therefore sees
/// every request and response: its graceful shutdown (close once the requests in
/// progress are answered) covers these requests too, so a request either gets
/// its response or was never committed.
final class HotPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// A request this handler answers.
    enum Operation: Equatable {
        case allocate(set: UInt32)
        case free(set: UInt32, id: UInt32)
    }

    /// What a committed operation answers: the CLI's `--json` document.
    private enum Answer: Sendable {
        case allocated(id: UInt32, set: UInt32)
        case freed(Bool, id: UInt32, state: String, set: UInt32)

        var json: String {
            switch self {
            case .allocated(let id, let set): ServiceResponses.allocated(id: id, set: set)
            case .freed(let freed, let id, let state, let set): ServiceResponses.freed(freed, id: id, state: state, set: set)
            }
        }
    }

    /// A body longer than this is not `{}`: the request goes to the router.
    private static let largestBody = 64

    private let core: ServiceCore
    /// Requests passed on to the router (from their head) and not answered yet.
    private var routed = 0
    /// Whether the request being read goes to the router.
    private var routing = false
    /// A request of ours being read: its head and body so far.
    private var collecting: (operation: Operation, head: HTTPRequest, body: [ByteBuffer], bytes: Int)?
    /// Whether one of ours is being committed.
    private var committing = false
    /// What came in while one of ours is committed (parts read, and events such as the
    /// client's end of input, which would close the connection before the answer), and
    /// whether a read was asked for meanwhile.
    private enum Held {
        case part(HTTPRequestPart)
        case event(Any)
        case error(any Error)
    }
    /// A ring, taken from the front: an answer passes on what it can and leaves the rest in
    /// place (copying the rest, up to ``mostHeldParts``, at every answer made a client that
    /// pipelines hundreds of requests cost the others their turn).
    private var held = CircularBuffer<Held>()
    /// Bytes of the parts held (bodies; a head or an end counts as 256).
    private var heldBytes = 0
    /// Beyond these, reading stops until the commit is answered. Below them it goes on, so a
    /// request that follows is read whole (Hummingbird's idle timeout spares a connection whose
    /// requests are all read and one is being answered, however long its commit waits).
    private static let mostHeldParts = 1024
    private static let mostHeldBytes = 1 << 20
    private var readWanted = false
    /// The operation of a whole request that waits for the client to take its earlier
    /// answers (the channel to be writable again) before it is committed.
    private var deferred: Operation?
    private var closed = false
    /// Parts passed on so far (a replay of held parts ends with a read-complete when it passed some on).
    private var forwardedParts = 0
    private var date = HTTPDate()

    /// How long a request may wait for its client to take earlier answers before the connection is closed.
    private let waitLimit: TimeAmount
    /// Closes the connection when the deferred request has waited ``waitLimit``.
    private var waitTimer: Scheduled<Void>?

    /// - Parameter waitLimit: how long a request waits, uncommitted, for a client that does
    ///   not read its answers before the connection is closed (the request timeout).
    init(core: ServiceCore, waitLimit: TimeAmount = .seconds(10)) {
        self.core = core
        self.waitLimit = waitLimit
    }

    /// The operation of a request head this handler answers, if it is one.
    static func operation(_ head: HTTPRequest) -> Operation? {
        guard let path = head.path, !path.contains("?"), head.headerFields[.expect] == nil else { return nil }
        if let connection = head.headerFields[.connection], connection.lowercased().contains("close") { return nil }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].isEmpty, parts[1] == "sets", parts[3] == "ids", let set = UInt32(parts[2]) else { return nil }
        switch (head.method, parts.count) {
        case (.post, 4): return .allocate(set: set)
        case (.delete, 5): return UInt32(parts[4]).map { .free(set: set, id: $0) }
        default: return nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if committing {
            held.append(.part(part))
            heldBytes += Self.size(of: part)
        } else {
            handle(part, context: context)
        }
    }

    /// What a held part counts against ``mostHeldBytes``.
    private static func size(of part: HTTPRequestPart) -> Int {
        if case .body(let chunk) = part { return chunk.readableBytes }
        return 256
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if committing {
            held.append(.error(error))
        } else {
            context.fireErrorCaught(error)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if committing {
            held.append(.event(event))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if routing {
            if case .end = part { routing = false }
            forward(part, context: context)
            return
        }
        if var request = collecting {
            switch part {
            case .head:
                routeCollected(context: context)
                routeNew(part, context: context)
            case .body(let chunk):
                request.bytes += chunk.readableBytes
                request.body.append(chunk)
                collecting = request
                if request.bytes > Self.largestBody { routeCollected(context: context) }
            case .end(let trailers):
                guard trailers == nil, Self.isEmptyObject(request.body, operation: request.operation) else {
                    routeCollected(context: context)
                    handle(part, context: context)
                    return
                }
                collecting = nil
                commit(request.operation, context: context)
            }
            return
        }
        guard case .head(let head) = part, routed == 0, let operation = Self.operation(head) else {
            routeNew(part, context: context)
            return
        }
        collecting = (operation, head, [], 0)
    }

    /// Passes a part that belongs to no request being read on to the router: a head
    /// starts a routed request (anything else, which the decoder never sends here, just goes on).
    private func routeNew(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if case .head = part { startRouting() }
        forward(part, context: context)
    }

    /// A request goes to the router: counted from its head (the router may answer before its body ends).
    private func startRouting() {
        routing = true
        routed += 1
    }

    /// Passes the request being collected on to the router.
    private func routeCollected(context: ChannelHandlerContext) {
        guard let request = collecting else { return }
        collecting = nil
        startRouting()
        forward(.head(request.head), context: context)
        for chunk in request.body { forward(.body(chunk), context: context) }
    }

    private func forward(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        forwardedParts += 1
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// An empty body, or `{}` with blanks, for an allocation; an empty one for a free.
    private static func isEmptyObject(_ body: [ByteBuffer], operation: Operation) -> Bool {
        let bytes = body.flatMap { $0.readableBytesView }.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\t") }
        if bytes.isEmpty { return true }
        if case .allocate = operation { return bytes.elementsEqual("{}".utf8) }
        return false
    }

    private func commit(_ operation: Operation, context: ChannelHandlerContext) {
        committing = true
        // A client that does not read its answers gets no more commits until it does: what it
        // sent waits here uncommitted (and is dropped if it is cut off), instead of being
        // committed with answers that pile up and are lost with the connection.
        guard context.channel.isWritable else {
            deferred = operation
            // Nothing else times this out (the request was read whole, its answer not begun).
            let channel = context.channel
            waitTimer = context.eventLoop.scheduleTask(in: waitLimit) { channel.close(promise: nil) }
            return
        }
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let complete: @Sendable (Result<Answer, IOASIDError>) -> Void = { result in
            loop.execute {
                let (handler, context) = bound.value
                handler.answer(result, context: context)
            }
        }
        switch operation {
        case .allocate(let set):
            core.metrics?.operation("alloc")
            core.store.submit({ tx in
                Answer.allocated(id: try tx.allocate(in: SetID(set)).rawValue, set: set)
            }, completion: complete)
        case .free(let set, let id):
            core.metrics?.operation("free")
            core.store.submit({ tx in
                let freed = try tx.free(IOASID(id), in: SetID(set))
                // The state as this commit leaves it (the router reads it after the commit).
                let state = CommandLineJSON.state((try? tx.find(IOASID(id)))?.state)
                return Answer.freed(freed, id: id, state: state, set: set)
            }, completion: complete)
        }
    }

    private func answer(_ result: Result<Answer, IOASIDError>, context: ChannelHandlerContext) {
        committing = false
        // Counted whether or not the client is still there to read it (as the operation was).
        if case .failure(let error) = result { core.metrics?.failure(error.code.name) }
        guard !closed else { return }
        switch result {
        case .success(let answer):
            write(.ok, answer.json, context: context)
        case .failure(let error):
            write(ServiceResponses.status(forExit: CommandLineJSON.exitStatus(for: error)), CommandLineJSON.error(error), context: context)
        }
        // What came in meanwhile, in order, until a request among it is committed in turn.
        let before = forwardedParts
        while !committing, let item = held.popFirst() {
            switch item {
            case .part(let part):
                heldBytes -= Self.size(of: part)
                handle(part, context: context)
            case .event(let event): context.fireUserInboundEventTriggered(event)
            case .error(let error): context.fireErrorCaught(error)
            }
        }
        if forwardedParts != before { context.fireChannelReadComplete() }
        readIfWanted(context: context)
    }

    /// Whether to read no more for now: too much is held while one commits, or the client
    /// does not take its answers (the channel is not writable). Reading on regardless would
    /// commit what the client sends while the answers to its earlier requests pile up, to be
    /// lost when it is cut off for not reading them.
    private func mustWait(_ context: ChannelHandlerContext) -> Bool {
        (committing && (held.count >= Self.mostHeldParts || heldBytes >= Self.mostHeldBytes)) || !context.channel.isWritable
    }

    private func readIfWanted(context: ChannelHandlerContext) {
        if readWanted, !mustWait(context) {
            readWanted = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let operation = deferred {
            deferred = nil
            waitTimer?.cancel()
            waitTimer = nil
            commit(operation, context: context)
        }
        readIfWanted(context: context)
        context.fireChannelWritabilityChanged()
    }

    private func write(_ status: HTTPResponse.Status, _ json: String, context: ChannelHandlerContext) {
        var body = context.channel.allocator.buffer(capacity: json.utf8.count + 1)
        body.writeString(json)
        body.writeString("\n")
        var head = HTTPResponse(status: status)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.date] = date.now()
        head.headerFields[.server] = "ioasid"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if mustWait(context) {
            readWanted = true
        } else {
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routed > 0 { routed -= 1 }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        waitTimer?.cancel()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closed = true
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), made once a second.
struct HTTPDate {
    private var second = Int.min
    private var text = ""
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    mutating func now() -> String {
        let seconds = Int(Date().timeIntervalSince1970.rounded(.down))
        if seconds != second {
            text = Self.format(seconds)
            second = seconds
        }
        return text
    }

    /// `seconds` since 1970 in UTC, as `Wed, 02 Dec 2026 21:56:36 GMT` (civil date from days: H. Hinnant's algorithm).
    static func format(_ seconds: Int) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let time = seconds - days * 86400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(Self.days[weekday]), \(two(day)) \(Self.months[month - 1]) \(year) \(two(time / 3600)):\(two(time / 60 % 60)):\(two(time % 60)) GMT"
    }
}
