import Foundation
import IOASIDClient
import LMDB

#if canImport(Glibc)
import Glibc
#endif

/// Why the socket path cannot be used.
package struct SocketPathError: Error { package let message: String }

/// The service's socket, and how it gets to its path without touching another server's.
///
/// SwiftNIO removes a socket at the path it binds, and when it closes the server socket
/// it removes whatever is at the path it bound by then — a second server's socket, if the
/// operator removed the first's and started another. So the service binds a private name
/// beside the path (`.ioasid-RANDOM.sock`), and once it listens moves its socket to the
/// path with a rename that never replaces (`RENAME_NOREPLACE`): a server that took the
/// path meanwhile keeps it, and NIO's removal at close finds nothing at the private name.
///
/// A path longer than `sockaddr_un` holds is bound and reached through its open directory
/// (see ``UnixSocketAddress``): the directory stays open until ``close()``.
///
/// Services in one directory take turns (`flock` on the directory) from checking the path
/// to moving their socket there, and to removing it at stop: one service's removal of a
/// stale socket cannot remove the socket another has just moved to the same path.
package final class ListeningSocket: Sendable {
    /// Where clients connect.
    package let path: String
    /// The private name's full path, beside ``path``.
    package let privatePath: String
    /// What NIO binds: ``privatePath``, or the same name through the open directory when that is too long.
    package let bindPath: String
    /// The directory, open for as long as NIO may use ``bindPath``; -1 when ``bindPath`` does not go through it.
    private let directory: Int32
    /// The directory opened to take turns with other services (`flock`); -1 when it cannot be opened.
    private let turns: Int32

    /// Waits for this directory's turn, makes `path` free for the service (``prepare(_:)``) and
    /// picks the private name beside it. The turn lasts until ``moveIntoPlace()`` or ``close()``.
    package init(path: String) throws(SocketPathError) {
        // A path clients cannot reach is refused (rename would put the socket there all the same).
        do { try UnixSocketAddress.checkReachable(path) } catch { throw SocketPathError(message: error.description) }
        self.path = path
        let parent = (path as NSString).deletingLastPathComponent
        let directoryPath = parent.isEmpty ? "." : parent
        let turns = open(directoryPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        do throws(SocketPathError) {
            try Self.takeTurn(turns, path: path)
            Self.removeLeftovers(in: directoryPath)
            try Self.prepare(path)
        } catch {
            if turns >= 0 { _ = Glibc.close(turns) }
            throw error
        }
        self.turns = turns
        var random = SystemRandomNumberGenerator()
        let name = Self.privatePrefix + String(UInt64.random(in: 0 ... .max, using: &random), radix: 16) + ".sock"
        privatePath = (directoryPath as NSString).appendingPathComponent(name)
        if privatePath.utf8.count <= UnixSocketAddress.capacity {
            bindPath = privatePath
            directory = -1
        } else {
            let fd = open(directoryPath, UnixSocketAddress.pathOnly | O_DIRECTORY | O_CLOEXEC)
            if fd < 0 {
                let message = "cannot open the socket's directory \(directoryPath): \(String(cString: strerror(errno)))"
                if turns >= 0 { _ = Glibc.close(turns) }
                throw SocketPathError(message: message)
            }
            bindPath = "/proc/self/fd/\(fd)/\(name)"
            directory = fd
        }
    }

    /// Moves the listening socket from its private name to ``path``, never over anything
    /// there; returns its identity (device and inode), by which ``remove()`` knows it.
    package func moveIntoPlace() throws(SocketPathError) -> [UInt8] {
        defer { Self.endTurn(turns) }
        guard let status = (try? FileSystem.status(privatePath)) ?? nil, status.kind == .socket else {
            throw SocketPathError(message: "the socket the service bound at \(privatePath) is gone")
        }
        var failure: Int32 = 0
        do {
            try FileSystem.rename(privatePath, to: path, replacing: false)
        } catch {
            failure = error.code
        }
        // A file system without RENAME_NOREPLACE: a hard link is made only where nothing is.
        if failure == EINVAL || failure == ENOSYS {
            failure = link(privatePath, path) == 0 ? 0 : errno
            if failure == 0 { unlink(privatePath) }
        }
        guard failure == 0 else {
            unlink(privatePath)
            if failure == EEXIST { throw SocketPathError(message: "another server took \(path) while this one started") }
            throw SocketPathError(message: "cannot move the socket to \(path): \(String(cString: strerror(failure)))")
        }
        return status.identity
    }

    /// Removes the socket at ``path`` if it is still the one this server bound (`identity`):
    /// another server may have replaced it after it was unlinked.
    package func remove(identity: [UInt8]?) {
        guard let identity, (try? Self.takeTurn(turns, path: path)) != nil else { return }
        defer { Self.endTurn(turns) }
        guard let status = (try? FileSystem.status(path)) ?? nil, status.kind == .socket, status.identity == identity else { return }
        unlink(path)
    }

    /// Ends the turn if it is still held and closes the directories (after the server socket is closed).
    package func close() {
        if directory >= 0 { _ = Glibc.close(directory) }
        if turns >= 0 { _ = Glibc.close(turns) }
    }

    /// Takes the directory's turn (an exclusive `flock`), waiting up to 10 s for another service
    /// to finish placing or removing its socket. Without a descriptor (a directory this user
    /// cannot read), goes ahead alone.
    static func takeTurn(_ fd: Int32, path: String) throws(SocketPathError) {
        guard fd >= 0 else { return }
        for _ in 0..<1000 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return }
            guard errno == EWOULDBLOCK || errno == EINTR else { return }
            usleep(10_000)
        }
        throw SocketPathError(message: "another service has been placing its socket beside \(path) for 10 s")
    }

    static func endTurn(_ fd: Int32) {
        if fd >= 0 { _ = flock(fd, LOCK_UN) }
    }

    /// Makes `path` free for the service: nothing there is fine; a socket nobody listens on (a
    /// dead server's) is removed; a live one, one whose state cannot be told, or anything that
    /// is not a socket, is refused.
    static func prepare(_ path: String) throws(SocketPathError) {
        let found: FileStatus?
        do { found = try FileSystem.status(path) } catch { throw SocketPathError(message: error.message) }
        guard let status = found else { return }
        guard status.kind == .socket else {
            throw SocketPathError(message: "\(path) exists and is not a socket; remove it or choose another --socket")
        }
        switch isListening(path) {
        case .some(true): throw SocketPathError(message: "another server is listening on \(path)")
        case nil: throw SocketPathError(message: "cannot tell whether a server listens on \(path); remove it or choose another --socket")
        case .some(false): break
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw SocketPathError(message: "cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// How private names begin (`.ioasid-RANDOM.sock`).
    static let privatePrefix = ".ioasid-"

    /// Removes the private names that services killed between binding and moving their
    /// socket left in `directory`: this user's sockets that nobody listens on and that have not
    /// changed for a minute (a service listens at its private name microseconds after binding
    /// it, so one starting beside this one is never taken for a leftover). Best effort.
    static func removeLeftovers(in directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, let names = try? FileSystem.entries(ofDirectory: fd) else { return }
        let now = Int64(time(nil))
        for name in names where name.hasPrefix(privatePrefix) && name.hasSuffix(".sock") {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let status = (try? FileSystem.status(path)) ?? nil, status.kind == .socket,
                  status.owner == FileStatus.currentUser, now - status.modified >= 60, isListening(path) == false
            else { continue }
            unlink(path)
        }
    }

    /// Whether a server accepts connections on the socket at `path`: `false` only when the
    /// connection is refused (nobody listens) or the socket is gone; `nil` when it cannot be
    /// told (not allowed to connect, say). Never waits: a server whose backlog is full listens.
    package static func isListening(_ path: String) -> Bool? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        let failure = try? UnixSocketAddress.with(path: path) { address, length in connect(fd, address, length) == 0 ? 0 : errno }
        switch failure {
        case 0, EAGAIN, EINPROGRESS: return true
        case ECONNREFUSED, ENOENT: return false
        default: return nil
        }
    }
}
