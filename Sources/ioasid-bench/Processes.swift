// Starting the CLI as a separate process and timing it from spawn to exit.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process that failed.
struct ChildFailure: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let stderr: String
    var description: String { "`\(command)` exited with status \(status): \(stderr)" }
}

/// The `ioasid` binary next to this one (built with the same configuration by `Tools/bench`).
func cliBinary() throws -> String {
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let path = ((me as NSString).deletingLastPathComponent as NSString).appendingPathComponent("ioasid")
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw ChildFailure(command: path, status: -1, stderr: "no ioasid binary next to ioasid-bench; build it with the same -c (Tools/bench does)")
    }
    return path
}

/// Runs `arguments[0]` with `arguments` (standard output to /dev/null, standard error to
/// `errorFile`) and waits for it; returns the seconds from `posix_spawn` to `waitpid`'s return.
/// Throws when it exits non-zero.
func runTimed(_ arguments: [String], errorFile: String) throws -> Double {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, errorFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
    argv.append(nil)
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    var status: Int32 = 0
    let start = ContinuousClock.now
    let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
    guard rc == 0 else { throw ChildFailure(command: arguments.joined(separator: " "), status: -rc, stderr: String(cString: strerror(rc))) }
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let elapsed = seconds(ContinuousClock.now - start)
    // WIFEXITED && WEXITSTATUS == 0
    if status & 0x7f != 0 || (status >> 8) & 0xff != 0 {
        let message = (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
        throw ChildFailure(command: arguments.joined(separator: " "), status: status, stderr: message)
    }
    return elapsed
}
