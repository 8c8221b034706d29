internal import CLMDBSupport
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A child process fed through a pipe: `events consume` runs its command with
/// this (Foundation's `Process` would link all of swift-corelibs-foundation
/// into the tool; see ``BackgroundThread``).
package enum ChildProcess {
    /// Starts `arguments` (the first looked up on PATH) with a new pipe as its
    /// standard input, SIGPIPE, SIGTERM and SIGINT at their default actions and
    /// no other descriptor of this process; returns its pid and the pipe's
    /// write end (close-on-exec), which the caller writes and closes.
    ///
    /// - Throws: the `pipe2` or `posix_spawn` error as an ``LMDBError`` holding its errno
    ///   (`ENOENT` when there is no such program).
    package static func spawnWithInput(_ arguments: [String]) throws(LMDBError) -> (pid: Int32, input: Int32) {
        guard !arguments.isEmpty else { throw LMDBError(code: EINVAL) }
        var ends: [Int32] = [-1, -1]
        guard clmdb_pipe_cloexec(&ends) == 0 else { throw LMDBError(code: errno) }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: Int32 = 0
        let status = clmdb_spawn_with_input(&pid, argv, ends[0])
        close(ends[0])
        guard status == 0 else {
            close(ends[1])
            throw LMDBError(code: status)
        }
        return (pid, ends[1])
    }

    /// Waits for `pid` to end: its exit status, or the signal that killed it
    /// (status and signal both the signal's number). A `waitpid` that fails for
    /// another reason than EINTR (no such child) reads as status 127, the
    /// shell's "could not run".
    package static func wait(_ pid: Int32) -> (status: Int32, signal: Int32?) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return (127, nil) }
        }
        let signalNumber = status & 0x7f
        return signalNumber != 0 ? (signalNumber, signalNumber) : ((status >> 8) & 0xff, nil)
    }
}
