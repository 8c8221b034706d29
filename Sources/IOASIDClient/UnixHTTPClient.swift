#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure to talk to the service: the socket could not be reached, or it
/// did not answer in HTTP/1.1.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in words.
    public let message: String
    /// The `errno` of a failed system call, if any.
    public let errno: Int32?

    /// An error with a message (and an `errno`).
    public init(_ message: String, errno: Int32? = nil) {
        self.message = message
        self.errno = errno
    }

    /// The message, with the system's words for `errno`.
    public var description: String {
        guard let errno else { return message }
        return "\(message): \(String(cString: strerror(errno)))"
    }
}

/// A minimal HTTP/1.1 client over a Unix domain socket, with POSIX sockets and
/// nothing else: one request per connection (`Connection: close`), a
/// `Content-Length` request body, and a response body read as it arrives
/// (chunked or not), so a streamed response is handed over piece by piece.
///
/// It is what `ioasid --socket PATH` uses to reach `ioasid serve`; it needs no
/// SwiftNIO, so the `ioasid` tool stays light.
public struct UnixHTTPClient: Sendable {
    /// The socket's path.
    public let path: String

    /// A client of the service listening on `path`.
    public init(path: String) { self.path = path }

    /// A response's status line and headers (names lowercased).
    public struct Head: Sendable {
        /// The status code.
        public let status: Int
        /// The headers, names lowercased, in order.
        public let headers: [(name: String, value: String)]

        /// The first value of a header.
        public func header(_ name: String) -> String? {
            let lowered = name.lowercased()
            return headers.first { $0.name == lowered }?.value
        }
    }

    /// A whole response.
    public struct Response: Sendable {
        /// Status and headers.
        public let head: Head
        /// The body.
        public let body: [UInt8]
    }

    /// Sends one request and returns the whole response.
    public func send(_ method: String, _ target: String, body: [UInt8] = [], contentType: String = "application/json") throws(ClientError) -> Response {
        var received: [UInt8] = []
        let head = try stream(method, target, body: body, contentType: contentType) { received += $0 }
        return Response(head: head, body: received)
    }

    /// Sends one request and hands the response body to `onBody` as it arrives.
    /// Returns the head once the body has ended (the server closed the connection
    /// or sent the last chunk). An error `onBody` throws ends the exchange.
    @discardableResult
    public func stream(
        _ method: String, _ target: String, body: [UInt8] = [], contentType: String = "application/json",
        onHead: (Head) -> Void = { _ in },
        onBody: ([UInt8]) throws -> Void
    ) throws(ClientError) -> Head {
        let connection = try Connection(path: path)
        var request = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAccept: application/json\r\n"
        if !body.isEmpty || method == "POST" || method == "PUT" {
            request += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        }
        request += "\r\n"
        try connection.writeAll(Array(request.utf8) + body)
        var reader = Reader(connection: connection)
        let head = try reader.readHead()
        onHead(head)
        let chunked = head.header("transfer-encoding")?.lowercased().contains("chunked") ?? false
        do {
            if method == "HEAD" || head.status == 204 || head.status == 304 {
                return head
            } else if chunked {
                while true {
                    let sizeLine = try reader.readLine()
                    let hex = sizeLine.split(separator: ";").first.map(String.init) ?? ""
                    guard let size = Int(hex.trimmingCharacters(), radix: 16) else { throw ClientError("bad chunk size '\(sizeLine)'") }
                    if size == 0 {
                        // Trailers, then the empty line.
                        while try !reader.readLine().isEmpty {}
                        return head
                    }
                    try onBody(try reader.read(exactly: size))
                    guard try reader.readLine().isEmpty else { throw ClientError("a chunk did not end with CRLF") }
                }
            } else if let length = head.header("content-length").flatMap({ Int($0.trimmingCharacters()) }) {
                var remaining = length
                while remaining > 0 {
                    let piece = try reader.readSome(atMost: remaining)
                    guard !piece.isEmpty else { throw ClientError("the service closed the connection before the end of the response") }
                    remaining -= piece.count
                    try onBody(piece)
                }
                return head
            } else {
                while true {
                    let piece = try reader.readSome(atMost: 65536)
                    if piece.isEmpty { return head }
                    try onBody(piece)
                }
            }
        } catch let error as ClientError {
            throw error
        } catch {
            throw ClientError("\(error)")
        }
    }
}

/// One connected stream socket, closed when the value goes away.
final class Connection {
    let descriptor: Int32

    init(path: String) throws(ClientError) {
        #if os(Linux)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        if fd < 0 { throw ClientError("cannot create a socket", errno: errno) }
        let failure: Int32?
        do {
            failure = try UnixSocketAddress.with(path: path) { address, length throws(ClientError) -> Int32? in
                var result: Int32
                repeat { result = connect(fd, address, length) } while result != 0 && errno == EINTR
                return result == 0 ? nil : errno
            }
        } catch {
            _ = close(fd)
            throw error
        }
        if let failure {
            _ = close(fd)
            throw ClientError("cannot connect to the service at \(path)", errno: failure)
        }
        descriptor = fd
    }

    deinit { _ = close(descriptor) }

    func writeAll(_ bytes: [UInt8]) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return send(descriptor, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ClientError("cannot send the request", errno: errno)
            }
            offset += n
        }
    }

    /// Up to `count` bytes; empty at the end of the stream.
    func read(atMost count: Int) throws(ClientError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n >= 0 {
                buffer.removeSubrange(n...)
                return buffer
            }
            if errno == EINTR { continue }
            throw ClientError("cannot read the response", errno: errno)
        }
    }
}

/// Buffered reading of a response: lines, exact lengths, whatever is there.
struct Reader {
    let connection: Connection
    var buffer: [UInt8] = []
    var start = 0

    init(connection: Connection) { self.connection = connection }

    private mutating func fill() throws(ClientError) -> Bool {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        let more = try connection.read(atMost: 65536)
        buffer += more
        return !more.isEmpty
    }

    /// A line without its CRLF.
    mutating func readLine() throws(ClientError) -> String {
        while true {
            if let index = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = index
                if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = index + 1
                return line
            }
            if buffer.count - start > 65536 { throw ClientError("a response line is longer than 64 KiB") }
            guard try fill() else { throw ClientError("the service closed the connection mid-response") }
        }
    }

    mutating func read(exactly count: Int) throws(ClientError) -> [UInt8] {
        while buffer.count - start < count {
            guard try fill() else { throw ClientError("the service closed the connection mid-response") }
        }
        let bytes = Array(buffer[start..<start + count])
        start += count
        return bytes
    }

    mutating func readSome(atMost count: Int) throws(ClientError) -> [UInt8] {
        if start == buffer.count {
            guard try fill() else { return [] }
        }
        let end = min(buffer.count, start + count)
        let bytes = Array(buffer[start..<end])
        start = end
        return bytes
    }

    mutating func readHead() throws(ClientError) -> UnixHTTPClient.Head {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ClientError("the service did not answer in HTTP/1.1 ('\(statusLine.prefix(80))')")
        }
        var headers: [(name: String, value: String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]).lowercased(), String(line[line.index(after: colon)...]).trimmingCharacters()))
            if headers.count > 100 { throw ClientError("the response has more than 100 headers") }
        }
        return UnixHTTPClient.Head(status: status, headers: headers)
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (no Foundation).
    func trimmingCharacters() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(scalars[first...last])
    }
}

/// One keep-alive HTTP/1.1 connection to the service, for a client that sends
/// many requests (a VMM's agent, a benchmark): no connection set-up per request.
/// Responses must carry `Content-Length` (every non-streaming endpoint does).
/// Not thread-safe: one connection per thread.
public final class UnixHTTPConnection {
    private let connection: Connection
    private var reader: Reader

    /// Connects to the service listening on `path`.
    public init(path: String) throws(ClientError) {
        connection = try Connection(path: path)
        reader = Reader(connection: connection)
    }

    /// Sends one request and reads its whole response.
    public func send(_ method: String, _ target: String, body: [UInt8] = []) throws(ClientError) -> UnixHTTPClient.Response {
        var request = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
        if !body.isEmpty || method == "POST" || method == "PUT" {
            request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        request += "\r\n"
        try connection.writeAll(Array(request.utf8) + body)
        let head = try reader.readHead()
        guard let length = head.header("content-length").flatMap({ Int($0.trimmingCharacters()) }) else {
            throw ClientError("a keep-alive response without Content-Length")
        }
        return UnixHTTPClient.Response(head: head, body: try reader.read(exactly: length))
    }
}
