import HTTPTypes
import Hummingbird
import IOASIDCommandLine
import IOASIDStore

/// JSON responses in the CLI's spelling, and the HTTP status of each exit code.
enum ServiceResponses {
    /// The HTTP status that fits an `ioasid` exit status: 409 refused by a rule,
    /// 404 not found, 503 store unusable, 400 usage error.
    static func status(forExit exit: Int32) -> HTTPResponse.Status {
        switch exit {
        case 0: .ok
        case 1: .conflict
        case 2: .notFound
        case 64: .badRequest
        default: .serviceUnavailable
        }
    }

    /// `{"id","set"}`: the CLI's `alloc --json` document, keys sorted, written directly (no encoder on the hot path).
    static func allocated(id: UInt32, set: UInt32) -> String { "{\"id\":\(id),\"set\":\(set)}" }

    /// `{"freed","ids":[{"id","state"}],"set"}`: the CLI's `free --json` document for one ID, keys sorted.
    static func freed(_ freed: Bool, id: UInt32, state: String, set: UInt32) -> String {
        "{\"freed\":\(freed ? 1 : 0),\"ids\":[{\"id\":\(id),\"state\":\"\(state)\"}],\"set\":\(set)}"
    }

    /// `{"error":{"code","message"}}`.
    static func errorBody(code: String, message: String) -> String {
        CommandLineJSON.error(code: code, message: message)
    }

    /// A JSON document (one line and a newline).
    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(text)
        if !text.hasSuffix("\n") { buffer.writeString("\n") }
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }

    /// The error document of a store error, with the status of its exit code.
    static func error(_ error: any Error) -> Response {
        let failure = error as? IOASIDError ?? IOASIDError(.internalError, "unexpected error: \(error)")
        return json(CommandLineJSON.error(failure), status: status(forExit: CommandLineJSON.exitStatus(for: failure)))
    }

    /// An error of the service's own (`usage`, `accessDenied`, `notFound`…).
    static func error(code: String, message: String, status: HTTPResponse.Status) -> Response {
        json(errorBody(code: code, message: message), status: status)
    }
}
