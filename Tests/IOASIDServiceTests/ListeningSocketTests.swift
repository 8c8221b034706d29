import Foundation
import IOASIDClient
import IOASIDService
import IOASIDTestSupport
import LMDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How the service's socket reaches its path (``ListeningSocket``), in-process, with
/// the rename failing as it does on a file system without `RENAME_NOREPLACE`.
@Suite("ListeningSocket: the socket moved to its path, never over another")
struct ListeningSocketTests {
    /// A listening socket bound at `path` (through its directory when long); closed by the caller.
    static func listen(at path: String, listening: Bool = true) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SupportCheckFailed("socket: \(errno)") }
        let bound = try UnixSocketAddress.with(path: path) { address, length in bind(fd, address, length) }
        guard bound == 0, !listening || Glibc.listen(fd, 4) == 0 else {
            _ = close(fd)
            throw SupportCheckFailed("bind/listen \(path): \(errno)")
        }
        return fd
    }

    static func identity(_ path: String) throws -> [UInt8]? { try FileSystem.status(path)?.identity }

    @Test("The socket is moved to its path by rename, or by a hard link where RENAME_NOREPLACE is not supported; either way never over a socket already there",
          arguments: [nil, EINVAL, ENOSYS] as [Int32?])
    func moveIntoPlace(renameFails: Int32?) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("s.sock")
        let socket = try ListeningSocket(path: path)
        defer { socket.close() }
        let fd = try Self.listen(at: socket.bindPath)
        defer { _ = close(fd) }
        let bound = try Self.identity(socket.privatePath)
        let faults = renameFails.map { [SyscallFaults.Fault(.rename, errno: $0)] } ?? []
        let (plan, result) = SyscallFaults.failing(faults) { try socket.moveIntoPlace() }
        #expect(plan.injected == faults.count)
        #expect(try result.get() == bound)
        #expect(try Self.identity(path) == bound, "the bound socket is at the path")
        #expect(try Self.identity(socket.privatePath) == nil, "and no longer at its private name")

        // Another server takes a path after this one chose it: the move fails and leaves the other's socket.
        let second = try ListeningSocket(path: dir.child("taken.sock"))
        defer { second.close() }
        let otherFD = try Self.listen(at: second.path)
        defer { _ = close(otherFD) }
        let other = try Self.identity(second.path)
        let secondFD = try Self.listen(at: second.bindPath)
        defer { _ = close(secondFD) }
        let (secondPlan, refused) = SyscallFaults.failing(faults) { try second.moveIntoPlace() }
        #expect(secondPlan.injected == faults.count)
        #expect(throws: SocketPathError.self) { try refused.get() }
        if case .failure(let error as SocketPathError) = refused {
            #expect(error.message.contains("another server took"), "\(error.message)")
        }
        #expect(try Self.identity(second.path) == other, "the other server's socket is untouched")
        #expect(try Self.identity(second.privatePath) == nil, "the refused socket's private name is removed")
    }

    @Test("A socket whose backlog is full is seen listening at once (the check never waits), and one nobody listens on is not")
    func listeningCheckNeverWaits() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("busy.sock")
        let server = try Self.listen(at: path, listening: false)
        defer { _ = close(server) }
        #expect(ListeningSocket.isListening(path) == false, "bound, not listening: connections are refused")
        #expect(Glibc.listen(server, 0) == 0)
        // Fill the backlog: connect without waiting until the kernel says it would have to.
        var clients: [Int32] = []
        defer { for fd in clients { _ = close(fd) } }
        for _ in 0..<64 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            clients.append(fd)
            let result = try UnixSocketAddress.with(path: path) { address, length in connect(fd, address, length) == 0 ? 0 : errno }
            if result == EAGAIN { break }
        }
        let started = Date()
        #expect(ListeningSocket.isListening(path) == true)
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("Services in one directory take turns: a service that finds the directory's turn taken (another placing its socket) waits for it")
    func servicesTakeTurns() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let other = open(dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { _ = close(other) }
        #expect(flock(other, LOCK_EX) == 0)
        let done = Locked<Bool>(false)
        let path = dir.child("s.sock")
        let thread = Thread {
            if let socket = try? ListeningSocket(path: path) {
                socket.close()
                done.withLock { $0 = true }
            }
        }
        thread.start()
        usleep(300_000)
        #expect(!done.withLock { $0 }, "it waits while the turn is taken")
        #expect(flock(other, LOCK_UN) == 0)
        for _ in 0..<500 where !done.withLock({ $0 }) { usleep(10_000) }
        #expect(done.withLock { $0 }, "and goes on once it is given back")
    }

    @Test("A private name a killed service left (a socket nobody listens on, a minute old, this user's) is removed when a service starts beside it; a fresh one, a listening one and a file that is not a socket are left")
    func leftoversRemoved() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let old = Date(timeIntervalSinceNow: -120)
        func place(_ name: String, listening: Bool, aged: Bool) throws -> Int32 {
            let fd = try Self.listen(at: dir.child(name), listening: listening)
            if aged { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir.child(name)) }
            return fd
        }
        let leftover = try place(".ioasid-1eft.sock", listening: false, aged: true)
        _ = close(leftover)
        let fresh = try place(".ioasid-f7e5.sock", listening: false, aged: false)
        _ = close(fresh)
        let live = try place(".ioasid-11fe.sock", listening: true, aged: true)
        defer { _ = close(live) }
        #expect(FileManager.default.createFile(atPath: dir.child(".ioasid-f11e.sock"), contents: Data("x".utf8)))
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir.child(".ioasid-f11e.sock"))
        let socket = try ListeningSocket(path: dir.child("s.sock"))
        socket.close()
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        #expect(left == [".ioasid-f7e5.sock", ".ioasid-11fe.sock", ".ioasid-f11e.sock"])
    }
}
