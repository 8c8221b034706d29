// Helper processes for the hostile-I/O and power-loss tests (HostileIOTests, PowerLossTests).
import Foundation
import LMDB

#if canImport(Glibc)
import Glibc
#endif

/// `measure RESULT PROGRAM ARGS…`: runs PROGRAM with this process's standard
/// input, output and error, waits for it with `wait4`, and writes
/// `maxrss_kb elapsed_ms exit_status term_signal` to the file RESULT (so the
/// figures do not mix with what the program prints). Exits with the program's status.
func measure(result: String, program: String, arguments: [String]) -> Never {
    let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
    let started = ContinuousClock.now
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, program, nil, nil, argv, environ)
    guard spawned == 0 else { fail("cannot start \(program): errno \(spawned)", code: 1) }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 {
        guard errno == EINTR else { fail("wait4 failed: errno \(errno)", code: 1) }
    }
    let elapsed = ContinuousClock.now - started
    let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    let signal = status & 0x7f
    let exitStatus = signal == 0 ? (status >> 8) & 0xff : -1
    let line = "\(usage.ru_maxrss) \(String(format: "%.1f", milliseconds)) \(exitStatus) \(signal)\n"
    do { try Data(line.utf8).write(to: URL(fileURLWithPath: result)) } catch { fail("cannot write \(result): \(error)", code: 1) }
    exit(signal == 0 ? exitStatus : 128 + signal)
}

/// `with-sigpipe default|ignore PROGRAM ARGS…`: executes PROGRAM with SIGPIPE
/// at its default action (as a shell starts a pipeline's commands) or ignored,
/// whatever the disposition of the process that started this one.
func execWithSIGPIPE(ignored: Bool, program: String, arguments: [String]) -> Never {
    _ = signal(SIGPIPE, ignored ? SIG_IGN : SIG_DFL)
    let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
    execv(program, argv)
    fail("cannot execute \(program): errno \(errno)", code: 1)
}

/// `snoop DIR`: what a hostile local user does while the owner writes files
/// into DIR. Until its standard input reaches end of file (or becomes
/// readable), it walks DIR over and over, trying to open every entry (files,
/// directories, FIFOs; without following links) and the store files by their
/// well-known names inside every subdirectory, and every open descriptor of
/// every `ioasid` process through `/proc/PID/fd`. Prints `opened PATH` for
/// each success (DIR itself excepted), `seen NAME` for each distinct name met
/// in DIR, and `attempts N`.
func snoop(directory: String) {
    var opened = Set<String>()
    var seen = Set<String>()
    var attempts = 0
    func tryOpen(_ path: String) -> Int32 {
        attempts += 1
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd >= 0 { opened.insert(path) }
        return fd
    }
    func names(in fd: Int32) -> [String] {
        (try? FileSystem.entries(ofDirectory: fd)) ?? []
    }
    func walk(_ path: String, depth: Int) {
        for known in ["data.mdb", "lock.mdb"] {
            let fd = tryOpen(path + "/" + known)
            if fd >= 0 { close(fd) }
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        for name in names(in: fd) {
            if depth == 0 { seen.insert(name) }
            let child = path + "/" + name
            let childFD = tryOpen(child)
            guard childFD >= 0 else { continue }
            var st = stat()
            let isDirectory = fstat(childFD, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
            close(childFD)
            if isDirectory, depth < 4 { walk(child, depth: depth + 1) }
        }
    }
    func ioasidDescriptors() {
        let fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        for pid in names(in: fd) where pid.allSatisfy(\.isNumber) {
            guard let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), comm.hasPrefix("ioasid") else { continue }
            for n in 0..<32 {
                let fd = tryOpen("/proc/\(pid)/fd/\(n)")
                if fd >= 0 { close(fd) }
            }
        }
    }
    var stop = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
    repeat {
        walk(directory, depth: 0)
        ioasidDescriptors()
        opened.remove(directory)
    } while poll(&stop, 1, 1) == 0  // a round every millisecond: thousands of tries a second, a core left for the owner
    for path in opened.sorted() { emit("opened \(path)") }
    for name in seen.sorted() { emit("seen \(name)") }
    emit("attempts \(attempts)")
}

/// `atomic-write DEST full|no-dir-sync|no-file-sync`: writes 256 KiB to DEST
/// the way `AtomicFileWriter` does (a temporary file beside it, created 0600,
/// written, synced, renamed into place, directory synced), or deliberately
/// without the directory sync or without the file sync: the controls that show
/// the power-loss model catches what it is meant to catch.
func atomicWrite(destination: String, mode: String) throws {
    let temporary = FileSystemPaths.parent(of: destination) + "/.weak-" + String(UInt64.random(in: 0 ... .max), radix: 36)
    let fd = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fail("cannot create \(temporary): errno \(errno)", code: 1) }
    let chunk = [UInt8](repeating: 0x61, count: 64 << 10)
    for _ in 0..<4 {
        let written = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == chunk.count else { fail("write failed: errno \(errno)", code: 1) }
    }
    if mode != "no-file-sync", fsync(fd) != 0 { fail("fsync failed: errno \(errno)", code: 1) }
    close(fd)
    guard rename(temporary, destination) == 0 else { fail("rename failed: errno \(errno)", code: 1) }
    if mode != "no-dir-sync" {
        let dir = open(FileSystemPaths.parent(of: destination), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0, fsync(dir) == 0 else { fail("directory sync failed: errno \(errno)", code: 1) }
        close(dir)
    }
    emit("wrote \(destination)")
}

enum FileSystemPaths {
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
