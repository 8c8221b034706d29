import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a child process did.
struct Outcome {
    /// The exit status, or 128 + the signal that killed it.
    let status: Int32
    /// The signal that killed it, if one did.
    let signal: Int32?
    let stdout: Data
    let stderr: String
    let elapsed: Duration
    let timedOut: Bool

    var out: String { String(decoding: stdout, as: UTF8.self) }
    var summary: String { "status \(status)\(signal.map { " (signal \($0))" } ?? "")\(timedOut ? " TIMED OUT" : ""): \(stderr)" }
}

/// A child process started with chosen standard streams; whatever it prints on a
/// stream the caller did not provide is collected on a background thread.
final class Child: @unchecked Sendable {
    let process = Process()
    let started = ContinuousClock.now
    private let lock = NSLock()
    private var outData = Data()
    private var errData = Data()
    private let group = DispatchGroup()

    /// - Parameters:
    ///   - stdin: a `FileHandle` or `Pipe`; `nil` for `/dev/null`.
    ///   - stdout: a `FileHandle` or `Pipe`; `nil` to collect it.
    init(
        _ executable: String, _ arguments: [String], stdin: Any? = nil, stdout: Any? = nil,
        environment: [String: String] = [:], directory: String? = nil
    ) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "IOASID_STORE")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardInput = stdin ?? FileHandle.nullDevice
        let err = Pipe()
        process.standardError = err
        var outPipe: Pipe?
        if let stdout {
            process.standardOutput = stdout
        } else {
            let pipe = Pipe()
            process.standardOutput = pipe
            outPipe = pipe
        }
        try process.run()
        collect(err.fileHandleForReading) { $0.errData = $1 }
        if let outPipe { collect(outPipe.fileHandleForReading) { $0.outData = $1 } }
    }

    private func collect(_ handle: FileHandle, _ store: @escaping @Sendable (Child, Data) -> Void) {
        group.enter()
        Thread.detachNewThread { [self] in
            let data = handle.readDataToEndOfFile()
            lock.lock()
            store(self, data)
            lock.unlock()
            group.leave()
        }
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits for the child to exit (killing it after `timeout`) and for its output.
    func wait(timeout: Duration = .seconds(60)) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while process.isRunning {
            if ContinuousClock.now > deadline {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                break
            }
            usleep(2000)
        }
        let elapsed = ContinuousClock.now - started
        _ = group.wait(timeout: .now() + 10)
        lock.lock()
        defer { lock.unlock() }
        let signaled = process.terminationReason == .uncaughtSignal
        return Outcome(
            status: signaled ? 128 + process.terminationStatus : process.terminationStatus,
            signal: signaled ? process.terminationStatus : nil,
            stdout: outData, stderr: String(decoding: errData, as: UTF8.self), elapsed: elapsed, timedOut: timedOut
        )
    }
}

enum Hostile {
    static let ioasid = CLI.path(of: "ioasid")
    static let worker = CLI.path(of: "ioasid-worker")
    static let isRoot = getuid() == 0
    static let testUser = "ioasid-test"

    /// Runs `ioasid ARGS` and waits for it.
    static func ioasid(
        _ arguments: [String], stdin: Any? = nil, stdout: Any? = nil, timeout: Duration = .seconds(60)
    ) throws -> Outcome {
        try Child(ioasid, arguments, stdin: stdin, stdout: stdout).wait(timeout: timeout)
    }

    /// Runs a system program quietly; returns its exit status.
    @discardableResult
    static func system(_ program: String, _ arguments: [String]) throws -> Int32 {
        let outcome = try Child(program, arguments).wait(timeout: .seconds(60))
        return outcome.status
    }

    /// One set of a store made for a test: `count` IDs, each with `dataSize`
    /// bytes of private data (varying with the ID) and, if asked, a guest ID.
    struct SetSpec {
        var token: String
        var count: Int
        var dataSize: Int = 0
        var guests = false
        var quota: Int? = nil
    }

    /// Creates a store at `path` with the given sets (the system set is set 1, these 2, 3, …).
    @discardableResult
    static func makeStore(
        _ path: String, capacity: UInt32 = 1 << 17, maximumDataSize: UInt32? = nil, sets: [SetSpec]
    ) throws -> [SetID] {
        var options = IOASIDStore.Options()
        options.capacity = capacity
        options.systemQuota = 8
        options.creation = .createNew
        if let maximumDataSize { options.maximumDataSize = maximumDataSize }
        let store = try IOASIDStore(path: path, options: options)
        var made: [SetID] = []
        for spec in sets {
            let set = try store.createSet(token: spec.token, quota: UInt32(spec.quota ?? max(spec.count, 1)))
            var done = 0
            while done < spec.count {
                let batch = min(4096, spec.count - done)
                let first = done
                let base = (0..<spec.dataSize).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                try store.write { tx in
                    var data = base
                    for i in first..<(first + batch) {
                        // Data that differs from ID to ID in its first bytes.
                        for (k, byte) in withUnsafeBytes(of: UInt32(i).bigEndian, Array.init).enumerated() where k < data.count { data[k] = byte }
                        _ = try tx.allocate(in: set, range: nil, data: data, guest: spec.guests ? UInt32(100 + i) : nil)
                    }
                }
                done += batch
            }
            made.append(set)
        }
        return made
    }

    /// Opens a store read-only for one look.
    static func look<R>(_ path: String, _ body: (IOASIDStore) throws -> R) throws -> R {
        var options = IOASIDStore.Options()
        options.readOnly = true
        options.creation = .openExisting
        return try body(try IOASIDStore(path: path, options: options))
    }

    static func isFrozen(_ path: String, _ set: SetID) throws -> Bool {
        try look(path) { try $0.set(set).isFrozen }
    }

    /// What a set holds regardless of its host IDs (which an import may remap):
    /// each ID's guest ID and data, sorted.
    static func payload(_ path: String, _ set: SetID) throws -> [String] {
        try contents(path, set).map { $0.split(separator: " ", maxSplits: 1)[1] }.map(String.init).sorted()
    }

    /// Every ID of a set with its guest ID and data, in ID order.
    static func contents(_ path: String, _ set: SetID) throws -> [String] {
        try look(path) { store in
            try store.ids(in: set).map { id in
                let info = try store.find(id, in: set)
                return "\(id.rawValue) \(info.guest.map(String.init) ?? "-") \(info.data.map { String(format: "%02x", $0) }.joined())"
            }
        }
    }

    /// The store's records as `mdb_dump -a` prints them (Debian's lmdb-utils),
    /// without the map size, which may grow without any record changing.
    static func dump(_ store: String) throws -> String {
        let outcome = try Child("/usr/bin/env", ["mdb_dump", "-a", store]).wait()
        guard outcome.status == 0 else { throw SupportCheckFailed("mdb_dump -a \(store) failed: \(outcome.summary)") }
        return outcome.out.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("mapsize=") }.joined(separator: "\n")
    }

    /// Every path under `directory` with its kind and mode (and size, except for the
    /// store files, whose size may change without any record changing).
    static func tree(_ directory: String) -> [String] {
        var lines: [String] = []
        func walk(_ path: String, _ relative: String) {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
            for name in names.sorted() {
                let child = path + "/" + name
                let rel = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard lstat(child, &st) == 0 else { continue }
                let kind: String
                switch st.st_mode & S_IFMT {
                case S_IFDIR: kind = "dir"
                case S_IFLNK: kind = "link"
                case S_IFREG: kind = "file"
                default: kind = "other"
                }
                let size = kind == "file" && !["data.mdb", "lock.mdb"].contains(name) ? " \(st.st_size)" : ""
                lines.append("\(rel) \(kind) \(String(st.st_mode & 0o7777, radix: 8))\(size)")
                if kind == "dir" { walk(child, rel) }
            }
        }
        walk(directory, "")
        return lines
    }

    /// The store's records and every file under `directory`, to compare before and after a failed command.
    struct Snapshot: Equatable {
        let dump: String
        let tree: [String]

        init(store: String, under directory: String) throws {
            dump = try Hostile.dump(store)
            tree = Hostile.tree(directory)
        }

        /// What differs from `other`, for a failure message.
        func difference(from other: Snapshot) -> String {
            var parts: [String] = []
            if dump != other.dump { parts.append("the store's records (mdb_dump -a) changed") }
            let added = Set(tree).subtracting(other.tree), removed = Set(other.tree).subtracting(tree)
            if !added.isEmpty { parts.append("new or changed: \(added.sorted())") }
            if !removed.isEmpty { parts.append("gone or changed: \(removed.sorted())") }
            return parts.joined(separator: "; ")
        }
    }

    /// Expects the store's records and every file under `directory` to be as in `before`.
    static func expectUnchanged(
        _ before: Snapshot, store: String, under directory: String, _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let after = try Snapshot(store: store, under: directory)
        let unchanged = after == before
        #expect(unchanged, "\(what): \(after.difference(from: before))", sourceLocation: sourceLocation)
    }

    /// Creates the unprivileged test user if it is missing (root only); whether it exists.
    static func ensureTestUser() throws -> Bool {
        if try system("/usr/bin/id", [testUser]) == 0 { return true }
        _ = try system("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", testUser])
        return try system("/usr/bin/id", [testUser]) == 0  // another test may have created it meanwhile
    }

    /// Mounts a tmpfs of `size` (e.g. "256k") at `path` (root only).
    static func mountTmpfs(_ path: String, size: String) throws -> Bool {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        return try system("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", path]) == 0
    }

    static func remountTmpfs(_ path: String, size: String) throws -> Bool {
        try system("/bin/mount", ["-o", "remount,size=\(size)", path]) == 0
    }

    static func unmount(_ path: String) { _ = try? system("/bin/umount", [path]) }

    /// Writes `data` to `path` with mode 0600.
    static func write(_ data: Data, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw SupportCheckFailed("cannot write \(path)")
        }
    }

    /// The export of `set` as bytes (through the library).
    static func export(_ path: String, _ set: SetID) throws -> Data {
        var options = IOASIDStore.Options()
        options.creation = .openExisting
        let store = try IOASIDStore(path: path, options: options)
        var data = Data()
        _ = try store.exportSet(set, to: { data.append(contentsOf: $0) })
        return data
    }

    /// Blocks SIGPIPE on the calling thread, so that writing into a pipe whose
    /// reader has gone returns EPIPE instead of killing the test process.
    static func blockSIGPIPEOnThisThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Seconds as a Double, for figures.
    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// The SHA-256 of `data` in hex (coreutils' sha256sum).
    static func sha256(_ data: Data) throws -> String {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("in")
        try write(data, to: path)
        let outcome = try Child("/usr/bin/env", ["sha256sum", path]).wait()
        guard outcome.status == 0, let digest = outcome.out.split(separator: " ").first else {
            throw SupportCheckFailed("sha256sum failed: \(outcome.summary)")
        }
        return String(digest)
    }

    /// An export whose header line is replaced by `header` (bytes), with its
    /// trailer's SHA-256 made to match again: only the header is wrong.
    static func resealed(_ export: Data, header: [UInt8]) throws -> Data {
        var lines = export.split(separator: 0x0a, omittingEmptySubsequences: false).map { Array($0) }
        if lines.last?.isEmpty == true { lines.removeLast() }
        lines[0] = header
        let body = Data(lines.dropLast().map { $0 + [0x0a] }.joined())
        let count = lines.count - 2
        let trailer = "{\"count\":\(count),\"end\":true,\"sha256\":\"\(try sha256(body))\"}\n"
        return body + Data(trailer.utf8)
    }
}
