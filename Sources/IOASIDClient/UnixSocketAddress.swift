#if canImport(Glibc)
package import Glibc
#elseif canImport(Darwin)
package import Darwin
#endif

/// The address of a Unix socket at a path, for `connect` and `bind`, at any depth.
///
/// `sockaddr_un` holds a path of at most 107 bytes (Linux), but a store can sit deeper
/// than that. A longer path is reached through its directory: the directory is opened
/// and the socket named as `/proc/self/fd/N/NAME`, which the kernel resolves through the
/// open directory (Linux). Only the socket's own name must then fit.
package enum UnixSocketAddress {
    /// The longest path `sockaddr_un` holds, without its terminating zero byte.
    package static var capacity: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1 }

    /// Calls `body` with an address for the socket at `path` (through its open directory
    /// when `path` is longer than ``capacity``) and its length; the directory is closed after.
    ///
    /// - Throws: ``ClientError`` for an empty path, a path with a zero byte, a name too long
    ///   even through its directory, or a directory that cannot be opened.
    package static func with<R>(path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(ClientError) -> R) throws(ClientError) -> R {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, !bytes.contains(0) else { throw ClientError("the socket path \"\(path)\" is empty or holds a zero byte") }
        if bytes.count <= capacity { return try withAddress(bytes, body) }
        // Through the directory: the last component must fit after the /proc prefix.
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")), slash + 1 < bytes.count else {
            throw ClientError("the socket path \(path) is longer than \(capacity) bytes")
        }
        let directory = slash == 0 ? "/" : String(decoding: bytes[..<slash], as: UTF8.self)
        #if os(Linux)
        let fd = open(directory, pathOnly | O_DIRECTORY | O_CLOEXEC)
        #else
        let fd: Int32 = -1
        errno = ENAMETOOLONG
        #endif
        if fd < 0 { throw ClientError("cannot open the socket's directory \(directory)", errno: errno) }
        defer { _ = close(fd) }
        let alias = Array("/proc/self/fd/\(fd)/".utf8) + bytes[(slash + 1)...]
        guard alias.count <= capacity else {
            throw ClientError("the socket path \(path) is too long: a socket path is at most \(capacity) bytes, or its last component \(longestName)")
        }
        return try withAddress(alias, body)
    }

    /// `O_PATH` (Linux; the same value on x86-64 and arm64), which Glibc's Swift module leaves out:
    /// the directory is opened only to name paths through it, so it needs search permission, not read.
    package static let pathOnly: Int32 = 0o10000000

    /// The longest last component a path longer than ``capacity`` may have: what is left after
    /// `/proc/self/fd/N/` with a descriptor number of up to 9 digits.
    package static var longestName: Int { capacity - 24 }

    /// Throws unless a client can reach a socket at `path`: at most ``capacity`` bytes, or a
    /// last component of at most ``longestName`` bytes after a directory.
    package static func checkReachable(_ path: String) throws(ClientError) {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, !bytes.contains(0) else { throw ClientError("the socket path \"\(path)\" is empty or holds a zero byte") }
        guard bytes.count > capacity else { return }
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")), slash + 1 < bytes.count, bytes.count - slash - 1 <= longestName else {
            throw ClientError("the socket path \(path) is too long: a socket path is at most \(capacity) bytes, or its last component \(longestName)")
        }
    }

    private static func withAddress<R>(_ bytes: [UInt8], _ body: (UnsafePointer<sockaddr>, socklen_t) throws(ClientError) -> R) throws(ClientError) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return try withUnsafePointer(to: &address) { pointer throws(ClientError) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(ClientError) -> R in try body(address, length) }
        }
    }
}
