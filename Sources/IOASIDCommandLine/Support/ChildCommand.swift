import Dispatch
import Foundation
import IOASIDStore
import LMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT for `events consume`: turned into a flag that the loop
/// checks, and passed on to the command running at the time. (Unchecked:
/// `sources` is set in `init` and only cancelled in `restore`; the rest is atomic.)
final class ConsumeStopper: @unchecked Sendable {
    private let stop = Atomic<Bool>(false)
    private let child = Atomic<Int32>(0)
    private let sources: [any DispatchSourceSignal]

    init() {
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            sources.append(source)
        }
        self.sources = sources
        for (source, signalNumber) in zip(sources, [SIGTERM, SIGINT]) {
            source.setEventHandler { [self] in
                stop.store(true, ordering: .sequentiallyConsistent)
                let pid = child.load(ordering: .sequentiallyConsistent)
                if pid > 0 { kill(pid, signalNumber) }
            }
            source.resume()
        }
    }

    /// Whether a signal asked to stop.
    var stopping: Bool { stop.load(ordering: .sequentiallyConsistent) }

    /// Records the running command (0: none), to pass signals on to it.
    func running(_ pid: Int32) { child.store(pid, ordering: .sequentiallyConsistent) }

    /// Sleeps for `duration`, waking early when asked to stop.
    func sleep(_ duration: Duration) async {
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        while !stopping, clock.now < deadline {
            try? await Task.sleep(for: min(.milliseconds(20), deadline - clock.now))
        }
    }

    /// Puts the signals back to their default action.
    func restore() {
        for source in sources { source.cancel() }
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
    }
}

extension FileManager {
    /// Whether `path` is a directory (which `access(X_OK)` also accepts).
    func directoryExists(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}

/// One run of `events consume`'s command.
enum ChildCommand {
    struct Outcome: CustomStringConvertible {
        let status: Int32
        let signal: Int32?
        var succeeded: Bool { signal == nil && status == 0 }
        var description: String { signal.map { "was killed by signal \($0)" } ?? "exited with status \(status)" }
    }

    /// Checks that `program` names an executable file, directly (with a `/`) or
    /// on PATH, so that a typo is a usage error at once rather than a command
    /// that fails (and is retried) forever.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/invalidArgument``.
    static func checkRunnable(_ program: String) throws(IOASIDError) {
        let candidates: [String]
        if program.contains("/" as Character) {
            candidates = [program]
        } else {
            let path = EnvironmentVariables.value("PATH") ?? "/usr/local/bin:/usr/bin:/bin"
            candidates = path.split(separator: ":").map { ($0.isEmpty ? "." : String($0)) + "/" + program }
        }
        guard !program.isEmpty, candidates.contains(where: { access($0, X_OK) == 0 && !FileManager.default.directoryExists($0) }) else {
            throw IOASIDError(.invalidArgument, "cannot run \(Names.escaped(program)): no such executable\(program.contains("/" as Character) ? "" : " on PATH")")
        }
    }

    /// Runs `command` (looked up on PATH) with `input` on its standard input
    /// and this process's standard output and error; waits for it.
    ///
    /// The command starts with SIGPIPE, SIGTERM and SIGINT at their default
    /// actions (ioasid ignores SIGPIPE, and `consume` catches the other two to
    /// pass them on): `yes | head` in it must end, and a forwarded SIGTERM must
    /// stop it. It inherits no descriptor but its standard streams.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/invalidArgument`` when it cannot be started.
    static func run(_ command: [String], input: [UInt8], stopper: ConsumeStopper) throws(IOASIDError) -> Outcome {
        let pid: Int32, writeEnd: Int32
        do { (pid, writeEnd) = try ChildProcess.spawnWithInput(["/usr/bin/env"] + command) } catch {
            throw IOASIDError(.invalidArgument, "cannot run \(Names.escaped(command.first ?? "")): \(error)", cause: error)
        }
        stopper.running(pid)
        defer { stopper.running(0) }
        // Write from another thread: a command that does not read its input must not stall consume.
        let done = DispatchSemaphore(value: 0)
        let write: @Sendable () -> Void = {
            // EPIPE: the command exited without reading it all, which is its business.
            try? SystemFile.borrowing(writeEnd).writeAll(input)
            close(writeEnd)
            done.signal()
        }
        do { try BackgroundThread.start(name: "ioasid-input", write) } catch {
            write()  // No thread to spare: write here (a command that reads nothing ends it with EPIPE once it exits).
        }
        let (status, signal) = ChildProcess.wait(pid)
        done.wait()
        return Outcome(status: status, signal: signal)
    }
}
