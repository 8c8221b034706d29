import Dispatch
import Foundation
import HTTPTypes
import IOASIDStore
import IOASIDTestSupport
import LMDB
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import IOASIDService
import Testing

/// ``HotPath`` alone in a test channel on a real store: what it answers itself and
/// what it passes on to the router, and when. (Through the socket, in
/// `ServiceTests`, its answers are the router's byte for byte, so these suites
/// are where the two paths can be told apart.)
@Suite("HotPath: the event-loop path of allocations and frees", .serialized)
struct HotPathTests {
    @Test("A request the router answers before its body ends does not keep later allocations off the event-loop path")
    func routerAnsweringEarly() async throws {
        try await withStore(capacity: 1000, systemQuota: 100) { store in
            let set = try await store.createSet(token: "vm:hot", quota: 8)
            let scene = try await Scene(store)
            // A routed request; the router refuses it at its head (as it does a body too large).
            try await scene.send(.head(Scene.request(.put, "/sets/\(set)/quota")))
            try await scene.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .contentTooLarge)))
            try await scene.channel.writeOutbound(HTTPResponsePart.end(nil))
            try await scene.send(.body(ByteBuffer(string: #"{"quota":9}"#)))
            try await scene.send(.end(nil))
            #expect(try await scene.responses(1) == [413])
            // An allocation after it: answered here, never seen by the router.
            try await scene.send(.head(Scene.request(.post, "/sets/\(set)/ids")))
            try await scene.send(.end(nil))
            #expect(try await scene.responses(1) == [200])
            #expect(scene.log.seen == ["head PUT /sets/\(set)/quota", "response 413", "body 11", "end", "response 200"])
            #expect(try store.ids(in: set).count == 1)
            try await scene.finish()
        }
    }

    @Test("What arrives while an allocation commits (a request, an error, an event) reaches the router after the answer, in order")
    func heldWhileCommitting() async throws {
        try await withStore(capacity: 1000, systemQuota: 100) { store in
            let set = try await store.createSet(token: "vm:hot", quota: 8)
            let scene = try await Scene(store)
            let writer = try await WriterGate.hold(store)
            defer { writer.release() }  // a test that fails early must not leave the writer held (a second signal is harmless)
            try await scene.send(.head(Scene.request(.post, "/sets/\(set)/ids")))
            try await scene.send(.end(nil))
            try await scene.send(.head(Scene.request(.get, "/status")))
            try await scene.send(.end(nil))
            try await scene.channel.testingEventLoop.executeInContext {
                scene.channel.pipeline.fireErrorCaught(Scene.Stray())
                scene.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
            try await Task.sleep(for: .milliseconds(50))
            #expect(scene.log.seen == [], "nothing passes while the allocation waits for its commit")
            writer.release()
            #expect(try await scene.responses(1) == [200])
            #expect(scene.log.seen == ["response 200", "head GET /status", "end", "error Stray", "event inputClosed"])
            try await writer.finish()
            try await scene.finish()
        }
    }

    @Test("While a commit waits, reading goes on until a megabyte or 1,024 parts wait, and resumes after the answer")
    func boundedReading() async throws {
        try await withStore(capacity: 1000, systemQuota: 100) { store in
            let set = try await store.createSet(token: "vm:hot", quota: 8)
            for (chunk, count) in [(64 * 1024, 16), (1, 1023)] {  // 1 MiB in 16 parts + head; 1,024 parts
                let scene = try await Scene(store)
                let writer = try await WriterGate.hold(store)
                defer { writer.release() }
            defer { writer.release() }  // a test that fails early must not leave the writer held (a second signal is harmless)
                try await scene.send(.head(Scene.request(.post, "/sets/\(set)/ids")))
                try await scene.send(.end(nil))
                try await scene.read()
                #expect(scene.log.reads == 1, "a read while little waits goes on")
                try await scene.send(.head(Scene.request(.put, "/sets/\(set)/quota")))
                for _ in 0..<count - 1 { try await scene.send(.body(ByteBuffer(repeating: 0x20, count: chunk))) }
                try await scene.read()
                #expect(scene.log.reads == 2, "below the bound, reading goes on")
                try await scene.send(.body(ByteBuffer(repeating: 0x20, count: chunk)))
                try await scene.read()
                try await scene.read()
                #expect(scene.log.reads == 2, "at the bound (\(chunk)-byte parts), reading stops")
                writer.release()
                #expect(try await scene.responses(1) == [200])
                #expect(scene.log.reads == 3, "after the answer, one read is asked for")
                #expect(scene.log.seen.first == "response 200" && scene.log.seen.count == 2 + count)
                try await writer.finish()
                try await scene.finish()
            }
        }
    }
}

/// A test channel holding ``HotPath`` between a recorder of what reaches the
/// socket (responses, reads) and a recorder of what reaches the router.
private struct Scene {
    struct Stray: Error {}

    let channel: NIOAsyncTestingChannel
    let log = Log()
    let stop: @Sendable () -> Void

    init(_ store: IOASIDStore) async throws {
        let (makeHotPath, stop) = try ServiceTestHooks.hotPath(store: store)
        let log = log
        channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandlers([SocketSide(log: log), makeHotPath(), RouterSide(log: log)])
        }
        self.stop = stop
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
    }

    static func request(_ method: HTTPRequest.Method, _ path: String) -> HTTPRequest {
        HTTPRequest(method: method, scheme: nil, authority: "localhost", path: path)
    }

    func send(_ part: HTTPRequestPart) async throws {
        try await channel.writeInbound(part)
    }

    func read() async throws {
        try await channel.testingEventLoop.executeInContext { channel.read() }
    }

    /// The statuses of the next `count` responses written to the socket (waiting up to 30 s).
    func responses(_ count: Int) async throws -> [Int] {
        var statuses: [Int] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while statuses.count < count, ContinuousClock.now < deadline {
            guard let part = try await channel.readOutbound(as: HTTPResponsePart.self) else {
                try await Task.sleep(for: .milliseconds(2))
                continue
            }
            if case .head(let head) = part { statuses.append(head.status.code) }
        }
        return statuses
    }

    func finish() async throws {
        _ = try await channel.finish(acceptAlreadyClosed: true)
        stop()
    }
}

/// What the two recorders saw, in order.
private final class Log: Sendable {
    private let state = Locked((seen: [String](), reads: 0))
    var seen: [String] { state.withLock { $0.seen } }
    var reads: Int { state.withLock { $0.reads } }
    func append(_ entry: String) { state.withLock { $0.seen.append(entry) } }
    func read() { state.withLock { $0.reads += 1 } }
}

/// Nearest the socket: records response heads and reads asked for.
private final class SocketSide: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = HTTPResponsePart
    let log: Log
    init(log: Log) { self.log = log }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head(let head) = unwrapOutboundIn(data) { log.append("response \(head.status.code)") }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        log.read()
        context.read()
    }
}

/// In the router's place: records the parts, errors and events passed on to it.
private final class RouterSide: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    let log: Log
    init(log: Log) { self.log = log }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): log.append("head \(head.method) \(head.path ?? "")")
        case .body(let chunk): log.append("body \(chunk.readableBytes)")
        case .end: log.append("end")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        log.append("error \(type(of: error))")
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        log.append("event \(event)")
    }
}

/// Holds the store's writer thread in a write of its own until released, so an
/// operation submitted meanwhile waits for its commit.
private final class WriterGate: Sendable {
    private let started = DispatchSemaphore(value: 0)
    private let gate = DispatchSemaphore(value: 0)
    private let task: Task<Void, any Error>

    private init(_ store: IOASIDStore) {
        let (started, gate) = (started, gate)
        task = Task { try await store.write { _ in started.signal(); gate.wait() } }
    }

    static func hold(_ store: IOASIDStore) async throws -> WriterGate {
        let writer = WriterGate(store)
        let deadline = ContinuousClock.now + .seconds(30)
        while writer.started.wait(timeout: .now()) == .timedOut {
            guard ContinuousClock.now < deadline else {
                writer.release()  // should the write start later, it passes straight through
                throw IOASIDError(.timedOut, "the writer did not start the gate's write")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
        return writer
    }

    func release() { gate.signal() }

    func finish() async throws { try await task.value }
}
