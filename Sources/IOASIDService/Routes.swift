import Foundation
import HTTPTypes
import Hummingbird
import IOASIDCommandLine
import IOASIDMigrations
import IOASIDStore
import LMDB
import NIOCore

/// Turns every error that escapes a route (an unknown path, a body too large,
/// a bad JSON body) into the JSON error document.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code: String
            switch error.status {
            case .notFound: code = "notFound"
            case .contentTooLarge: code = "bodyTooLarge"
            case .methodNotAllowed: code = "methodNotAllowed"
            default: code = "usage"
            }
            return ServiceResponses.error(code: code, message: error.body ?? error.status.reasonPhrase, status: error.status)
        } catch let error as IOASIDError {
            return ServiceResponses.error(error)
        } catch let error as RequestError {
            return ServiceResponses.error(code: "usage", message: error.message, status: .badRequest)
        } catch is NIOTooManyBytesError {
            // What collecting a body beyond its limit throws; left to the server, a bare 413.
            return ServiceResponses.error(code: "bodyTooLarge", message: "the request body is larger than the service takes (ioasid-serve --max-body)", status: .contentTooLarge)
        }
    }
}

/// A malformed request (a bad JSON body, a missing field).
struct RequestError: Error {
    let message: String
}

extension ServiceCore {
    /// Every endpoint (docs/openapi.yaml describes them).
    func routes() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        let core = self

        router.get("/info") { _, _ in
            struct Info: Encodable { let path: String; let storeID: String; let epoch: UInt32; let schema: UInt32; let version: String }
            do {
                let info = try core.store.info()
                return ServiceResponses.json(CommandLineJSON.encode(Info(
                    path: core.store.path, storeID: info.storeID, epoch: info.epoch, schema: info.schemaVersion, version: IOASIDCommand.version
                )))
            } catch {
                return ServiceResponses.error(error)
            }
        }
        router.get("/status") { _, _ in await core.respond("status", ["status"]) }
        router.get("/verify") { _, _ in await core.respond("verify", ["verify"]) }
        router.get("/capacity") { _, _ in await core.respond("capacity", ["capacity"]) }
        router.put("/capacity") { request, _ in
            struct Body: Decodable { let capacity: UInt32; let allowWideIDs: Bool? }
            let body = try await core.decode(Body.self, request)
            return await core.respond("capacity", ["capacity", "\(body.capacity)"] + (body.allowWideIDs == true ? ["--allow-wide-ids"] : []))
        }

        // Sets.
        router.get("/sets") { _, _ in await core.respond("set-list", ["set", "list"]) }
        router.post("/sets") { request, _ in
            struct Body: Decodable { let token: String; let quota: UInt32 }
            let body = try await core.decode(Body.self, request)
            return await core.respond("set-create", ["set", "create", "--token", body.token, "--quota", "\(body.quota)"])
        }
        router.get("/sets/by-token/:token") { _, context in
            await core.respond("set-show", ["set", "show", "--token", try context.parameters.require("token")])
        }
        router.get("/sets/:sid") { _, context in
            await core.respond("set-show", ["set", "show", try context.parameters.require("sid")])
        }
        router.get("/sets/:sid/ids") { _, context in
            await core.respond("set-ids", ["set", "ids", try context.parameters.require("sid")])
        }
        router.put("/sets/:sid/quota") { request, context in
            struct Body: Decodable { let quota: UInt32 }
            let body = try await core.decode(Body.self, request)
            return await core.respond("set-adjust", ["set", "adjust", try context.parameters.require("sid"), "--quota", "\(body.quota)"])
        }
        router.post("/sets/:sid/free") { request, context in
            struct Body: Decodable { let destroy: Bool? }
            let body = try await core.decode(Body.self, request, emptyAs: "{}")
            return await core.respond("set-free", ["set", "free", try context.parameters.require("sid")] + (body.destroy == true ? ["--destroy"] : []))
        }

        // IDs.
        router.post("/sets/:sid/ids") { request, context in
            try await core.allocate(request, set: try context.parameters.require("sid"))
        }
        router.delete("/sets/:sid/ids/:id") { _, context in
            await core.free(set: try context.parameters.require("sid"), id: try context.parameters.require("id"))
        }
        router.get("/sets/:sid/ids/:id") { _, context in
            await core.respond("find", ["find", try context.parameters.require("id"), "--set", try context.parameters.require("sid")])
        }
        router.get("/sets/:sid/guests/:guest") { _, context in
            await core.respond("find", ["find", "--set", try context.parameters.require("sid"), "--guest", try context.parameters.require("guest")])
        }
        router.get("/ids/:id") { _, context in
            await core.respond("find", ["find", try context.parameters.require("id")])
        }
        router.get("/ids/:id/set") { _, context in
            await core.respond("find-set", ["find-set", try context.parameters.require("id")])
        }
        router.get("/ids/:id/holders") { _, context in
            await core.respond("holders", ["holders", try context.parameters.require("id")])
        }
        router.get("/sets/:sid/ids/:id/data") { _, context in
            await core.respond("data", ["data", try context.parameters.require("id"), "--set", try context.parameters.require("sid")])
        }
        router.put("/sets/:sid/ids/:id/data") { request, context in
            struct Body: Decodable { let data: String }
            let body = try await core.decode(Body.self, request)
            return await core.respond("data", ["data", try context.parameters.require("id"), "--set", try context.parameters.require("sid"), "--", body.data])
        }
        router.delete("/sets/:sid/ids/:id/data") { _, context in
            await core.respond("data", ["data", try context.parameters.require("id"), "--set", try context.parameters.require("sid"), "--clear"])
        }
        router.put("/sets/:sid/ids/:id/guest") { request, context in
            struct Body: Decodable { let guest: UInt32 }
            let body = try await core.decode(Body.self, request)
            return await core.respond("attach", ["attach", try context.parameters.require("id"), "--set", try context.parameters.require("sid"), "--guest", "\(body.guest)"])
        }
        router.delete("/sets/:sid/ids/:id/guest") { _, context in
            await core.respond("detach", ["detach", try context.parameters.require("id"), "--set", try context.parameters.require("sid")])
        }
        router.post("/sets/:sid/ids/:id/holders") { request, context in
            struct Body: Decodable { let holder: String }
            let body = try await core.decode(Body.self, request)
            return await core.respond("hold", ["hold", try context.parameters.require("id"), "--set", try context.parameters.require("sid"), "--holder", body.holder])
        }
        router.delete("/sets/:sid/ids/:id/holders/:holder") { _, context in
            await core.respond("release", [
                "release", try context.parameters.require("id"), "--set", try context.parameters.require("sid"), "--holder", try context.parameters.require("holder"),
            ])
        }
        router.post("/batch") { request, _ in
            let buffer = try await request.body.collect(upTo: core.maxBody)
            return await core.respond("batch", ["batch"], stdin: Array(buffer.readableBytesView))
        }

        // Subscribers and events.
        router.get("/subscribers") { _, _ in await core.respond("events-list", ["events", "list"]) }
        router.post("/subscribers") { request, _ in
            struct Body: Decodable { let name: String; let sets: [UInt32]?; let kinds: [String]? }
            let body = try await core.decode(Body.self, request)
            var arguments = ["events", "subscribe", "--", body.name]
            for set in body.sets ?? [] { arguments.insert(contentsOf: ["--set", "\(set)"], at: 2) }
            for kind in body.kinds ?? [] { arguments.insert(contentsOf: ["--kind", kind], at: 2) }
            return await core.respond("subscribe", arguments)
        }
        router.delete("/subscribers/:name") { _, context in
            await core.respond("unsubscribe", ["events", "unsubscribe", "--", try context.parameters.require("name")])
        }
        router.get("/events/:name") { request, context in
            let name = try context.parameters.require("name")
            let query = request.uri.queryParameters
            let follow = query.get("follow").map { $0 == "true" || $0 == "1" } ?? false
            let lastEventID = HTTPField.Name("Last-Event-ID").flatMap { request.headers[$0] }
            let after = try Self.number(query.get("after") ?? lastEventID, "after")
            let limit = try Self.number(query.get("limit"), "limit")
            let sse = request.headers[.accept]?.contains("text/event-stream") ?? false
            return await core.events(name, follow: follow, after: after, limit: Int(clamping: limit ?? 1_000_000), sse: sse)
        }
        router.post("/events/:name/ack") { request, context in
            struct Body: Decodable { let through: UInt64 }
            let name = try context.parameters.require("name")
            let body = try await core.decode(Body.self, request)
            core.metrics?.operation("ack")
            do {
                try await core.store.acknowledge(name, through: body.through)
                return ServiceResponses.json(CommandLineJSON.subscriber(try core.store.subscriber(name)))
            } catch {
                core.metrics?.failure((error as? IOASIDError)?.code.name ?? "internalError")
                return ServiceResponses.error(error)
            }
        }

        // The CLI over the socket, and metrics.
        router.post("/cli") { request, _ in
            let body = try await core.decode(CLIRequest.self, request)
            return core.streamCommand(body)
        }
        router.get("/metrics") { _, _ in core.metricsResponse() }
        return router
    }

    /// An optional number parameter; a usage error when present but not a number.
    static func number(_ text: String?, _ name: String) throws -> UInt64? {
        guard let text else { return nil }
        guard let value = UInt64(text) else { throw RequestError(message: "\(name) must be a whole number, got '\(text.prefix(40))'") }
        return value
    }

    /// The request's JSON body, bounded by `--max-body`.
    func decode<T: Decodable>(_ type: T.Type, _ request: Request, emptyAs empty: String? = nil) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: maxBody)
        var bytes = Array(buffer.readableBytesView)
        if bytes.isEmpty, let empty { bytes = Array(empty.utf8) }
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw RequestError(message: "the request body is not the JSON this endpoint takes: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context): context.debugDescription
        default: "\(error)"
        }
    }

    /// `POST /sets/{sid}/ids`: the async API (group commit) for the common case;
    /// a range or a count goes through the `alloc` command.
    func allocate(_ request: Request, set: String) async throws -> Response {
        struct Body: Decodable { let data: String?; let guest: UInt32?; let min: UInt32?; let max: UInt32?; let count: UInt32? }
        // The hot path: an empty body or `{}` needs no JSON decoder.
        var request = request
        let buffer = try await request.collectBody(upTo: maxBody)
        let raw = buffer.readableBytesView.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }
        let body: Body
        if raw.isEmpty || raw.elementsEqual("{}".utf8) {
            body = Body(data: nil, guest: nil, min: nil, max: nil, count: nil)
        } else {
            do { body = try JSONDecoder().decode(Body.self, from: Data(buffer.readableBytesView)) } catch {
                throw RequestError(message: "the request body is not the JSON this endpoint takes: \(Self.describe(error))")
            }
        }
        guard let setID = UInt32(set), body.min == nil, body.max == nil, body.count == nil else {
            var arguments = ["alloc", "--set", set]
            if let min = body.min { arguments += ["--min", "\(min)"] }
            if let max = body.max { arguments += ["--max", "\(max)"] }
            if let count = body.count { arguments += ["--count", "\(count)"] }
            if let data = body.data { arguments += ["--data", data] }
            if let guest = body.guest { arguments += ["--guest", "\(guest)"] }
            return await respond("alloc", arguments)
        }
        metrics?.operation("alloc")
        var bytes: [UInt8] = []
        if let data = body.data {
            guard let decoded = Hex.decodeArgument(data) else {
                return ServiceResponses.error(code: "usage", message: "data must be hex digits, an even number of them", status: .badRequest)
            }
            bytes = decoded
        }
        do {
            let id = try await store.allocate(in: SetID(setID), data: bytes, guest: body.guest)
            return ServiceResponses.json(ServiceResponses.allocated(id: id.rawValue, set: setID))
        } catch {
            metrics?.failure(error.code.name)
            return ServiceResponses.error(error)
        }
    }

    /// `DELETE /sets/{sid}/ids/{id}`: the async API (group commit).
    func free(set: String, id: String) async -> Response {
        guard let setID = UInt32(set), let rawID = UInt32(id) else {
            return await respond("free", ["free", id, "--set", set])
        }
        metrics?.operation("free")
        do {
            let freed = try await store.free(IOASID(rawID), in: SetID(setID))
            let state = (try? store.find(IOASID(rawID)))?.state
            return ServiceResponses.json(ServiceResponses.freed(freed, id: rawID, state: CommandLineJSON.state(state), set: setID))
        } catch {
            metrics?.failure(error.code.name)
            return ServiceResponses.error(error)
        }
    }

    /// `GET /metrics`: Prometheus text, the store's figures read now.
    func metricsResponse() -> Response {
        guard let metrics else {
            return ServiceResponses.error(code: "notFound", message: "metrics are off: start the service with --metrics ADDR:PORT", status: .notFound)
        }
        do {
            let status = try store.status()
            let text = metrics.render(status: status, nowMillis: UInt64(Date().timeIntervalSince1970 * 1000))
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text))
            )
        } catch {
            return ServiceResponses.error(error)
        }
    }
}
