import Foundation
import IOASIDClient
import IOASIDTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A running `ioasid-serve` child process on a store of its own.
final class ServiceProcess: @unchecked Sendable {
    let process: Process
    let socket: String
    let store: String
    /// The service's standard error (a file, so a chatty service never blocks on a full pipe).
    let logPath: String

    /// Whether `ioasid-serve` is built beside the tests (Tools/test builds it first).
    static var isBuilt: Bool { FileManager.default.isExecutableFile(atPath: CLI.path(of: "ioasid-serve")) }

    /// Starts the service on `store` and waits until its socket answers.
    init(store: String, socket: String? = nil, arguments: [String] = [], environment: [String: String] = [:]) throws {
        self.store = store
        self.socket = socket ?? store + "/ioasid.sock"
        process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.path(of: "ioasid-serve"))
        process.arguments = ["--store", store] + (socket.map { ["--socket", $0] } ?? []) + arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "IOASID_STORE")
        env.removeValue(forKey: "IOASID_SOCKET")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        logPath = NSTemporaryDirectory() + "ioasid-serve-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let response = try? UnixHTTPClient(path: self.socket).send("GET", "/info"), response.head.status == 200 { return }
            if !process.isRunning { break }
            usleep(20_000)
        }
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        process.terminate()
        throw SupportCheckFailed("ioasid-serve did not start on \(self.socket): \(text)")
    }

    var client: UnixHTTPClient { UnixHTTPClient(path: socket) }

    /// One request; the body as text.
    func request(_ method: String, _ target: String, _ body: String = "") throws -> (status: Int, body: String) {
        let response = try client.send(method, target, body: Array(body.utf8))
        return (response.head.status, String(decoding: response.body, as: UTF8.self))
    }

    /// The JSON object of a response body.
    static func object(_ body: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    /// The error code of an error document.
    static func errorCode(_ body: String) -> String? { (object(body)["error"] as? [String: Any])?["code"] as? String }

    /// SIGTERM, then waits; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGKILL, then waits.
    func crash() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// What the service logged so far.
    var logText: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

/// A new initialised store in `dir` (through the CLI, as an operator would make it).
func makeServedStore(_ dir: TemporaryDirectory, _ name: String = "store", capacity: Int = 65536, systemQuota: Int = 1024) throws -> String {
    let store = dir.child(name)
    let result = try CLI.run(["--store", store, "init", "--capacity", "\(capacity)", "--system-quota", "\(systemQuota)"])
    guard result.status == 0 else { throw SupportCheckFailed("init failed: \(result.stderr)") }
    return store
}
