import Foundation
import HTTPTypes
import Hummingbird
import IOASIDCommandLine
import IOASIDStore
import LMDB
import Logging
import NIOCore
import ServiceLifecycle

/// The service's state shared by every request: the store (opened once, with
/// synchronous writes going through its group-commit writer), the threads
/// that run commands for clients, metrics and limits.
final class ServiceCore: Sendable {
    let store: IOASIDStore
    let metrics: ServiceMetrics?
    let executor: BlockingExecutor
    let logger: Logger
    let maxBody: Int
    let connections = ConnectionTable()

    /// - Throws: when not even one command thread can be started.
    init(store: IOASIDStore, metrics: ServiceMetrics?, logger: Logger, maxBody: Int, commandThreads: Int) throws(LMDBError) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.maxBody = maxBody
        executor = try BlockingExecutor(threads: commandThreads, name: "ioasid-cmd")
        if let metrics {
            store.observeGroupCommits { operations, duration in metrics.commit(operations: operations, duration: duration) }
        }
        store.watchForCommits()
    }

    // MARK: Commands run for clients

    /// Runs one `ioasid` command line in the service (the same implementation as
    /// the CLI) on the blocking threads; returns its exit status, standard output
    /// and standard error.
    func runCommand(_ arguments: [String], stdin: [UInt8] = []) async -> (status: Int32, out: [UInt8], err: [UInt8]) {
        let output = Locked<([UInt8], [UInt8])>(([], []))
        let failure = Locked<String?>(nil)
        let session = CommandSession(
            store: store,
            standardOutput: { bytes in output.withLock { $0.0 += bytes } },
            standardError: { bytes in output.withLock { $0.1 += bytes } },
            standardInput: stdin,
            terminal: .init(standardOutput: false, standardError: false, width: 80, asciiOnly: true),
            failed: { code in failure.withLock { $0 = $0 ?? code } }
        )
        let status = await Task(executorPreference: executor) {
            await IOASIDCommand.run(arguments: arguments, in: session)
        }.value
        let (out, err) = output.withLock { $0 }
        if status != 0 { metrics?.failure(failure.withLock { $0 } ?? "exit\(status)") }
        return (status, out, err)
    }

    /// Runs `--json ARGUMENTS` and answers with its JSON document (or its error
    /// document, with the status fitting the exit code).
    func respond(_ operation: String, _ arguments: [String], stdin: [UInt8] = []) async -> Response {
        metrics?.operation(operation)
        let (status, out, err) = await runCommand(["--json"] + arguments, stdin: stdin)
        if status == 0 {
            return ServiceResponses.json(String(decoding: out, as: UTF8.self))
        }
        return ServiceResponses.json(String(decoding: err, as: UTF8.self), status: ServiceResponses.status(forExit: status))
    }

    /// `POST /cli`: runs the command with the client's terminal and standard
    /// input, streaming JSON Lines `{"stdout":B64}` / `{"stderr":B64}` as the
    /// command prints, then `{"exit":N}`. A client that goes away ends the command
    /// (its next write fails, as on a closed pipe).
    func streamCommand(_ request: CLIRequest) -> Response {
        metrics?.operation("cli")
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let gone = Locked(false)
        /// The code of the failure the command reported, if any (metrics count failures by code).
        let failure = Locked<String?>(nil)
        @Sendable func frame(_ key: String, _ bytes: [UInt8]) -> [UInt8] {
            Array("{\"\(key)\":\"\(Data(bytes).base64EncodedString())\"}\n".utf8)
        }
        let session = CommandSession(
            store: store,
            standardOutput: { bytes throws(IOASIDError) in
                if gone.withLock({ $0 }) { throw IOASIDError(.storageFailure, "cannot write to standard output: the client went away") }
                continuation.yield(frame("stdout", bytes))
            },
            standardError: { bytes in continuation.yield(frame("stderr", bytes)) },
            standardInput: request.stdin.flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? [],
            terminal: request.terminal ?? .init(standardOutput: false, standardError: false, width: 80, asciiOnly: true),
            failed: { code in failure.withLock { $0 = $0 ?? code } }
        )
        let arguments = request.arguments
        let executor = executor
        let metrics = metrics
        // A command that waits (events tail --follow) writes nothing while it does: a blank line
        // every 15 s, which the client skips, finds a client that went away.
        let keepAlive = Task {
            while (try? await Task.sleep(for: .seconds(15))) != nil { continuation.yield(Array("\n".utf8)) }
        }
        let task = Task(executorPreference: executor) {
            let status = await IOASIDCommand.run(arguments: arguments, in: session)
            if status != 0 { metrics?.failure(failure.withLock { $0 } ?? "exit\(status)") }
            keepAlive.cancel()
            continuation.yield(Array("{\"exit\":\(status)}\n".utf8))
            continuation.finish()
        }
        let body = ResponseBody { writer in
            do {
                // At graceful shutdown the command is cancelled (one that follows events ends
                // within its poll, saying it was stopped), so the service does not wait for it for ever.
                try await withGracefulShutdownHandler {
                    for await chunk in stream {
                        try await writer.write(ByteBuffer(bytes: chunk))
                    }
                } onGracefulShutdown: {
                    task.cancel()
                }
                try await writer.finish(nil)
            } catch {
                gone.withLock { $0 = true }
                task.cancel()
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: body)
    }

    // MARK: Events

    /// `GET /events/{name}`: the pending events as JSON Lines (or SSE), and with
    /// `follow=true` every later one as its commit lands, woken by the store's
    /// commit signal (this service's commits, and other processes' through the
    /// inotify watch of `data.mdb`). Ends at graceful shutdown.
    func events(_ name: String, follow: Bool, after: UInt64?, limit: Int, sse: Bool) async -> Response {
        metrics?.operation("events")
        let store = store
        let first: [Event]
        do {
            _ = try store.subscriber(name)
            first = try store.pendingEvents(for: name, after: after, limit: limit)
        } catch {
            metrics?.failure(error.code.name)
            return ServiceResponses.error(error)
        }
        @Sendable func encode(_ events: [Event]) -> ByteBuffer {
            var buffer = ByteBuffer()
            for event in events {
                if sse {
                    buffer.writeString("id: \(event.sequence)\nevent: \(event.kind.rawValue)\ndata: \(CommandLineJSON.event(event))\n\n")
                } else {
                    buffer.writeString(CommandLineJSON.event(event) + "\n")
                }
            }
            return buffer
        }
        let contentType = sse ? "text/event-stream" : "application/x-ndjson"
        guard follow else {
            return Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: encode(first)))
        }
        let logger = logger
        let body = ResponseBody { writer in
            try await Self.follow(&writer, store: store, name: name, first: first, after: after, sse: sse, logger: logger, encode: encode)
            try await writer.finish(nil)
        }
        var headers: HTTPFields = [.contentType: contentType]
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: body)
    }
    private static func follow(
        _ writer: inout any ResponseBodyWriter, store: IOASIDStore, name: String, first: [Event], after: UInt64?, sse: Bool,
        logger: Logger, encode: @Sendable ([Event]) -> ByteBuffer
    ) async throws {
            var position = first.last?.sequence ?? after
        if !first.isEmpty { try await writer.write(encode(first)) } else if sse { try await writer.write(ByteBuffer(string: ": following\n\n")) }
        var idle = ContinuousClock.now
        // Ends at graceful shutdown (seen within the 1 s wait) or when the client goes away (a write fails).
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let generation = store.commitGeneration
            let events: [Event]
            do { events = try store.pendingEvents(for: name, after: position, limit: 1024) } catch {
                logger.info("event stream ended", metadata: ["subscriber": "\(name)", "reason": "\(error.code.name)"])
                break
            }
            if let last = events.last {
                position = last.sequence
                try await writer.write(encode(events))
                idle = .now
                continue
            }
            if ContinuousClock.now - idle > .seconds(15) {
                // Finds a client that went away, and keeps proxies from timing out.
                try await writer.write(ByteBuffer(string: sse ? ": keep-alive\n\n" : "\n"))
                idle = .now
            }
            await store.waitForCommit(after: generation, timeout: .seconds(1))
        }
    }
}

/// The body of `POST /cli`.
struct CLIRequest: Decodable {
    let arguments: [String]
    let stdin: String?
    let terminal: CommandSession.TerminalInfo?
}
