import Dispatch
import Foundation
import IOASIDStore
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
        if program.contains("/") {
            candidates = [program]
        } else {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            candidates = path.split(separator: ":").map { ($0.isEmpty ? "." : String($0)) + "/" + program }
        }
        guard !program.isEmpty, candidates.contains(where: { access($0, X_OK) == 0 && !FileManager.default.directoryExists($0) }) else {
            throw IOASIDError(.invalidArgument, "cannot run \(Names.escaped(program)): no such executable\(program.contains("/") ? "" : " on PATH")")
        }
    }

    /// Runs `command` (looked up on PATH) with `input` on its standard input
    /// and this process's standard output and error; waits for it.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/invalidArgument`` when it cannot be started.
    static func run(_ command: [String], input: [UInt8], stopper: ConsumeStopper) throws(IOASIDError) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let pipe = Pipe()
        process.standardInput = pipe
        // ioasid ignores SIGPIPE; the command must not inherit that (`yes | head` in it must end).
        // (Restored at once: the writes below must fail with EPIPE, not kill ioasid.)
        let previous = signal(SIGPIPE, SIG_DFL)
        let started = Result { try process.run() }
        signal(SIGPIPE, previous)
        if case .failure(let error) = started {
            throw IOASIDError(.invalidArgument, "cannot run \(Names.escaped(command[0])): \(error)")
        }
        stopper.running(process.processIdentifier)
        defer { stopper.running(0) }
        // Only the command reads the pipe: once it exits, a write fails (EPIPE) instead of blocking.
        try? pipe.fileHandleForReading.close()
        let writer = pipe.fileHandleForWriting
        let bytes = Data(input)
        // Write from another thread: a command that does not read its input must not stall consume.
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? writer.write(contentsOf: bytes)
            try? writer.close()
            done.signal()
        }
        process.waitUntilExit()
        done.wait()
        if process.terminationReason == .uncaughtSignal {
            return Outcome(status: process.terminationStatus, signal: process.terminationStatus)
        }
        return Outcome(status: process.terminationStatus, signal: nil)
    }
}
