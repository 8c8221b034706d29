import Foundation
import IOASIDClient
import IOASIDStore
import IOASIDTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `ioasid-serve` as a child process on real temporary stores: endpoints, errors,
/// the socket's safety, pushed events, the CLI over the socket.
@Suite("Service", .serialized)
struct ServiceTests {
    @Test("ioasid-serve is built beside the tests (Tools/test builds it before swift test)")
    func built() {
        #expect(ServiceProcess.isBuilt, "ioasid-serve is not built next to the tests: run the suite with Tools/test")
    }

    @Test("Endpoints answer with the CLI's JSON; errors are its error document with 409/404/400", .enabled(if: ServiceProcess.isBuilt))
    func endpointsAndErrors() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let service = try ServiceProcess(store: store)
        defer { service.stop() }

        let created = try service.request("POST", "/sets", #"{"token":"vm:a","quota":2}"#)
        #expect(created.status == 200, "\(created.body)")
        let set = try #require(ServiceProcess.object(created.body)["set"] as? Int)
        let first = try service.request("POST", "/sets/\(set)/ids", #"{"data":"01f0"}"#)
        #expect(first.status == 200)
        #expect(ServiceProcess.object(first.body)["set"] as? Int == set)
        let id = try #require(ServiceProcess.object(first.body)["id"] as? Int)
        #expect(try service.request("POST", "/sets/\(set)/ids").status == 200)
        // Refused by a rule: 409 and the CLI's code.
        let full = try service.request("POST", "/sets/\(set)/ids")
        #expect(full.status == 409)
        #expect(ServiceProcess.errorCode(full.body) == "quotaExceeded")
        // Not found: 404.
        let missing = try service.request("POST", "/sets/999/ids")
        #expect(missing.status == 404)
        #expect(ServiceProcess.errorCode(missing.body) == "noSuchSet")
        let noID = try service.request("GET", "/ids/60000")
        #expect(noID.status == 404 && ServiceProcess.errorCode(noID.body) == "noSuchID")
        // Bad requests: 400 with an error document.
        let badJSON = try service.request("POST", "/sets", "{nope")
        #expect(badJSON.status == 400 && ServiceProcess.errorCode(badJSON.body) == "usage", "\(badJSON.body)")
        let badNumber = try service.request("GET", "/sets/abc")
        #expect(badNumber.status == 400 && ServiceProcess.errorCode(badNumber.body) == "usage")
        let unknown = try service.request("GET", "/nothing/here")
        #expect(unknown.status == 404 && ServiceProcess.errorCode(unknown.body) != nil)
        // The same document as the CLI's --json.
        let found = try service.request("GET", "/sets/\(set)/ids/\(id)")
        let cli = try CLI.run(["--store", store, "--json", "find", "\(id)", "--set", "\(set)"])
        #expect(found.body.trimmingCharacters(in: .newlines) == cli.out)
        let status = try service.request("GET", "/status")
        #expect(status.body.trimmingCharacters(in: .newlines) == (try CLI.run(["--store", store, "--json", "status"])).out)
        let freed = try service.request("DELETE", "/sets/\(set)/ids/\(id)")
        #expect(ServiceProcess.object(freed.body)["freed"] as? Int == 1, "\(freed.body)")
        #expect(try CLI.run(["--store", store, "verify"]).status == 0)
    }

    /// `POST /cli` runs commands as the service's user: one that writes a file the client
    /// names or runs a program of the client's must be refused there, however the command
    /// line is spelled (a global option taking a value before it, `--store=`), and must
    /// leave nothing behind.
    @Test("POST /cli refuses commands that write client-named files or run programs (consume, backup, restore, export), however spelled", .enabled(if: ServiceProcess.isBuilt))
    func cliRefusesClientSideCommands() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let service = try ServiceProcess(store: store)
        defer { service.stop() }
        func cli(_ arguments: [String]) throws -> String {
            let body = String(decoding: try JSONSerialization.data(withJSONObject: ["arguments": arguments]), as: UTF8.self)
            let response = try service.request("POST", "/cli", body)
            #expect(response.status == 200)
            return response.body
        }
        #expect(try cli(["events", "subscribe", "agent"]).contains("{\"exit\":0}"))
        let marker = dir.child("ran")
        let refused: [[String]] = [
            ["events", "consume", "agent", "--once", "--", "/usr/bin/touch", marker],
            ["--json", "events", "consume", "agent", "--once", "--", "/usr/bin/touch", marker],
            ["--socket", "/nonexistent", "events", "consume", "agent", "--once", "--", "/usr/bin/touch", marker],
            ["--socket", "/nonexistent", "backup", dir.child("backup")],
            ["--store=/elsewhere", "backup", dir.child("backup")],
            ["restore", store, dir.child("restored")],
            ["migrate", "export", "--set", "1", "--out", dir.child("export.jsonl")],
            ["dump"],
            ["init", "--store", dir.child("new")],
        ]
        for arguments in refused {
            let output = try cli(arguments)
            #expect(output.contains("{\"exit\":64}"), "\(arguments): \(output)")
        }
        for path in ["ran", "backup", "restored", "export.jsonl", "new"] {
            #expect(!FileManager.default.fileExists(atPath: dir.child(path)), "\(path) was created by the service")
        }
        // Other commands still run there.
        #expect(try cli(["status"]).contains("{\"exit\":0}"))
    }

    @Test("The socket is 0600, a stale one is replaced, a live one refused, and it is removed on SIGTERM", .enabled(if: ServiceProcess.isBuilt))
    func socketLifecycle() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let service = try ServiceProcess(store: store)
        var st = stat()
        #expect(lstat(service.socket, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        // A second server on the same socket is refused, and the first goes on.
        let second = Process()
        second.executableURL = URL(fileURLWithPath: CLI.path(of: "ioasid-serve"))
        second.arguments = ["--store", store]
        second.standardError = FileHandle.nullDevice
        try second.run()
        second.waitUntilExit()
        #expect(second.terminationStatus == 3)
        #expect(try service.request("GET", "/info").status == 200)
        // SIGKILL leaves a stale socket; the next server replaces it.
        service.crash()
        #expect(lstat(service.socket, &st) == 0)
        let again = try ServiceProcess(store: store)
        #expect(try again.request("GET", "/info").status == 200)
        #expect(again.stop() == 0)
        #expect(lstat(again.socket, &st) != 0, "the socket is removed on SIGTERM")
    }

    @Test("The CLI prints the same output with the same exit status through --socket as directly", .enabled(if: ServiceProcess.isBuilt))
    func cliThroughSocket() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let direct = try makeServedStore(dir, "direct")
        let served = try makeServedStore(dir, "served")
        let service = try ServiceProcess(store: served)
        defer { service.stop() }
        // Each line runs on both stores: directly on one, through the service on the other.
        let script: [[String]] = [
            ["status"], ["--json", "status"],
            ["set", "create", "--token", "vm:one", "--quota", "3"], ["--json", "set", "create", "--token", "vm:two", "--quota", "2"],
            ["set", "create", "--token", "vm:one", "--quota", "3"], ["--json", "set", "create", "--token", "vm:one", "--quota", "3"],
            ["alloc", "--set", "2"], ["--json", "alloc", "--set", "2", "--data", "0a0b", "--guest", "101"],
            ["alloc", "--set", "2", "--count", "2"], ["alloc", "--set", "2"], ["--json", "alloc", "--set", "2"],
            ["alloc", "--set", "9"], ["--json", "alloc", "--set", "9"], ["alloc", "--set", "2", "--data", "xyz"],
            ["find", "2", "--set", "2"], ["--json", "find", "2", "--set", "2"], ["find", "2", "--set", "3"],
            ["find", "--guest", "101", "--set", "2"], ["find-set", "1"], ["holders", "1"],
            ["hold", "1", "--set", "2", "--holder", "kvm"], ["--json", "hold", "1", "--set", "2", "--holder", "vfio"],
            ["events", "subscribe", "agent"], ["--json", "events", "subscribe", "agent"], ["events", "list"],
            ["free", "1", "--set", "2"], ["--json", "free", "1", "--set", "2"], ["hold", "1", "--set", "2", "--holder", "x"],
            ["release", "1", "--set", "2", "--holder", "kvm"], ["release", "1", "--set", "2", "--holder", "nobody"],
            ["data", "2", "--set", "2"], ["data", "2", "--set", "2", "ff00"], ["--json", "data", "2", "--set", "2"],
            ["attach", "3", "--set", "2", "--guest", "7"], ["detach", "3", "--set", "2"],
            ["set", "list"], ["--json", "set", "show", "2"], ["set", "ids", "2"], ["set", "adjust", "2", "--quota", "1"],
            ["set", "adjust", "3", "--quota", "5"], ["capacity"], ["--json", "capacity"],
            ["events", "pending", "agent", "--limit", "3"], ["events", "ack", "agent", "--through", "2"],
            ["events", "ack", "ghost", "--through", "2"], ["set", "free", "3", "--destroy"],
            ["verify"], ["--json", "verify"], ["nonsense"], ["--json", "alloc"], ["alloc", "--set"], ["help", "alloc"], ["--version"],
        ]
        func normalized(_ text: String) -> String {
            // Times and store IDs differ between the two stores, nothing else may.
            var out = text.replacingOccurrences(of: #"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"#, with: "TIME", options: .regularExpression)
            out = out.replacingOccurrences(of: #"[0-9a-f]{32}"#, with: "STOREID", options: .regularExpression)
            out = out.replacingOccurrences(of: #" in \d+\.\d+ s"#, with: " in TIME s", options: .regularExpression)
            return out.replacingOccurrences(of: dir.path, with: "DIR")
        }
        for line in script {
            let local = try CLI.run(["--store", direct] + line)
            let remote = try CLI.run(line, environment: ["IOASID_SOCKET": service.socket])
            #expect(remote.status == local.status, "\(line): exit \(remote.status) through the socket, \(local.status) directly; \(remote.stderr)")
            #expect(normalized(remote.stdout) == normalized(local.stdout).replacingOccurrences(of: "DIR/direct", with: "DIR/served"), "\(line) stdout")
            #expect(normalized(remote.stderr) == normalized(local.stderr).replacingOccurrences(of: "DIR/direct", with: "DIR/served"), "\(line) stderr")
        }
        // batch reads the client's standard input; --socket works as an option too.
        let input = "alloc --set 1\nalloc --set 1 --guest 5\n"
        let local = try CLI.run(["--store", direct, "--json", "batch"], input: input)
        let remote = try CLI.run(["--socket", service.socket, "--json", "batch"], input: input)
        #expect(remote.status == local.status && normalized(remote.stdout) == normalized(local.stdout))
        // An unreachable service is a clear error, exit 3.
        let nowhere = try CLI.run(["--socket", dir.child("none.sock"), "status"])
        #expect(nowhere.status == 3 && nowhere.stderr.contains("cannot reach the ioasid service"), "\(nowhere.stderr)")
    }

    @Test("Events are pushed to a follower as commits land: the service's own and a separate CLI process's", .enabled(if: ServiceProcess.isBuilt))
    func pushedEvents() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let service = try ServiceProcess(store: store)
        defer { service.stop() }
        #expect(try service.request("POST", "/subscribers", #"{"name":"agent","kinds":["ALLOC"]}"#).status == 200)
        let follower = EventFollower(socket: service.socket, subscriber: "agent")
        follower.start()
        defer { follower.stop() }
        try await Task.sleep(for: .milliseconds(200))
        var latencies: [Double] = []
        for round in 0..<20 {
            let started = Date()
            if round % 2 == 0 {
                #expect(try service.request("POST", "/sets/1/ids").status == 200)
            } else {
                #expect(try CLI.run(["--store", store, "alloc", "--set", "1"]).status == 0)
            }
            let committed = Date()
            let arrived = try #require(follower.waitForEvent(count: round + 1, timeout: 5), "event \(round + 1) never arrived")
            latencies.append(arrived.timeIntervalSince(round % 2 == 0 ? started : committed) * 1000)
        }
        // Far below the old 100 ms poll even on a loaded machine (the figures are measured by Tools/serve-bench).
        #expect(latencies.sorted()[latencies.count / 2] < 50, "median push latency \(latencies.sorted()[latencies.count / 2]) ms")
        // Acknowledge through the service.
        let ack = try service.request("POST", "/events/agent/ack", #"{"through":\#(follower.lastSequence)}"#)
        #expect(ack.status == 200 && ServiceProcess.object(ack.body)["lag"] as? Int == 0, "\(ack.body)")
    }
}

/// Follows `GET /events/NAME?follow=true` on a thread of its own and timestamps each event line.
final class EventFollower: @unchecked Sendable {
    let socket: String
    let subscriber: String
    private let condition = NSCondition()
    private var arrivals: [Date] = []
    private(set) var lastSequence = 0
    private var stopped = false

    init(socket: String, subscriber: String) {
        self.socket = socket
        self.subscriber = subscriber
    }

    func start() {
        Thread.detachNewThread { [self] in
            var pending: [UInt8] = []
            _ = try? UnixHTTPClient(path: socket).stream("GET", "/events/\(subscriber)?follow=true") { piece in
                pending += piece
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    guard !line.isEmpty else { continue }
                    let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any]
                    condition.lock()
                    arrivals.append(Date())
                    lastSequence = object?["sequence"] as? Int ?? lastSequence
                    condition.broadcast()
                    let done = stopped
                    condition.unlock()
                    if done { throw CancellationError() }
                }
            }
        }
    }

    /// The arrival time of the `count`-th event, waiting up to `timeout` seconds.
    func waitForEvent(count: Int, timeout: Double) -> Date? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while arrivals.count < count {
            if !condition.wait(until: deadline) { return nil }
        }
        return arrivals[count - 1]
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.unlock()
    }
}
