import Foundation
import IOASIDClient
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The service under crashes, hostile clients and checkers from outside Swift.
@Suite("Service robustness", .serialized)
struct ServiceRobustnessTests {
    /// The Python with prometheus_client and schemathesis (Tools/test makes a venv), else the system's.
    static var python: String {
        if let python = ProcessInfo.processInfo.environment["IOASID_TEST_PYTHON"], FileManager.default.isExecutableFile(atPath: python) { return python }
        let venv = SwiftSnippet.packageRoot + "/.build/pyvenv/bin/python"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "/usr/bin/env"
    }

    static func runPython(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws -> CLI.Result {
        python == "/usr/bin/env" ? try CLI.run(["python3"] + arguments, product: python, environment: environment, input: input)
            : try CLI.run(arguments, product: python, environment: environment, input: input)
    }

    @Test("A Python standard-library client allocates, follows events and acknowledges them, at a socket path of any depth",
          .enabled(if: ServiceProcess.isBuilt), arguments: [false, true])
    func pythonClient(deep: Bool) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let name = deep ? String(repeating: "d", count: 60) + "/" + String(repeating: "e", count: 60) + "/store" : "store"
        if deep { try FileManager.default.createDirectory(atPath: dir.child((name as NSString).deletingLastPathComponent), withIntermediateDirectories: true) }
        let service = try ServiceProcess(store: try makeServedStore(dir, name))
        defer { service.stop() }
        #expect(deep == (service.socket.utf8.count > UnixSocketAddress.capacity))
        let result = try Self.runPython([SwiftSnippet.packageRoot + "/contrib/ioasid_client.py", service.socket, "selftest"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("\"acknowledged\": true"), "\(result.stdout)")
    }

    /// 64 clients allocate and free through the service until it is signalled; then every
    /// acknowledged effect must be in the store (reopened), and verify clean.
    @Test("SIGKILL and SIGTERM under load: every acknowledged operation's effect is in the store; verify clean",
          .enabled(if: ServiceProcess.isBuilt), arguments: [SIGKILL, SIGTERM])
    func signalUnderLoad(signal: Int32) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir, capacity: 1 << 20, systemQuota: 1 << 19)
        let service = try ServiceProcess(store: store)
        // Per ID: acknowledged allocations minus acknowledged frees (they alternate, so 1 or 0),
        // requests that were sent but never answered, and the IDs of unanswered frees: a free
        // committed in the same group as (or just before) another client's allocation of that
        // ID can lose its response to SIGKILL while the allocation's arrives, making the balance 2.
        let log = Locked<(balance: [Int: Int], inFlight: Int, unansweredFrees: Set<Int>)>(([:], 0, []))
        let clients = 64
        let group = DispatchGroup()
        for _ in 0..<clients {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let connection = try? UnixHTTPConnection(path: service.socket) else { return }
                var mine: [Int] = []
                for step in 0..<100_000 {
                    log.withLock { $0.inFlight += 1 }
                    if step % 3 == 2, let id = mine.popLast() {
                        guard let response = try? connection.send("DELETE", "/sets/1/ids/\(id)"), response.head.status == 200 else {
                            log.withLock { _ = $0.unansweredFrees.insert(id) }
                            return
                        }
                        log.withLock { $0.balance[id, default: 0] -= 1; $0.inFlight -= 1 }
                    } else {
                        guard let response = try? connection.send("POST", "/sets/1/ids", body: Array("{}".utf8)), response.head.status == 200,
                            let id = ServiceProcess.object(String(decoding: response.body, as: UTF8.self))["id"] as? Int
                        else { return }
                        mine.append(id)
                        log.withLock { $0.balance[id, default: 0] += 1; $0.inFlight -= 1 }
                    }
                }
            }
        }
        usleep(1_500_000)
        kill(service.process.processIdentifier, signal)
        group.wait()
        service.process.waitUntilExit()
        if signal == SIGTERM { #expect(service.process.terminationStatus == 0, "SIGTERM is a clean exit") }
        let (balance, unacknowledged, unansweredFrees) = log.withLock { ($0.balance, $0.inFlight, $0.unansweredFrees) }
        #expect(balance.count > 50, "only \(balance.count) IDs were touched before the signal")
        let reopened = try IOASIDStore(path: store)
        var mismatches: [String] = []
        for (id, net) in balance {
            #expect(net == 0 || net == 1 || (net == 2 && unansweredFrees.contains(id)),
                    "ID \(id): allocations and frees did not alternate (\(net)) and no free of it went unanswered")
            let allocated = (try? reopened.find(IOASID(UInt32(id))))?.state == .allocated
            if allocated != (net >= 1) { mismatches.append("\(id): \(net >= 1 ? "acknowledged allocation missing" : "acknowledged free undone")") }
        }
        // Only a request still in flight at the signal (its commit may or may not have
        // landed) can make an ID differ from what was acknowledged.
        #expect(mismatches.count <= unacknowledged, "\(mismatches.count) IDs differ from what was acknowledged, \(unacknowledged) requests in flight: \(mismatches.prefix(10))")
        let verify = try CLI.run(["--store", store, "verify"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        // The next service starts over the stale socket a SIGKILL leaves.
        let again = try ServiceProcess(store: store)
        #expect(try again.request("GET", "/info").status == 200)
        again.stop()
    }

    @Test("A 100 MB body, a slowloris client and 10,000 idle connections do not stop other clients being served", .enabled(if: ServiceProcess.isBuilt))
    func hostileClients() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let service = try ServiceProcess(store: try makeServedStore(dir), arguments: ["--max-body", "1048576", "--request-timeout", "1"])
        defer { service.stop() }
        /// Another request from this process is served (which step failed, if not).
        func served(_ when: String) {
            do {
                let status = try service.request("GET", "/info").status
                #expect(status == 200, "\(when): status \(status)")
            } catch {
                Issue.record("\(when): \(error)")
            }
        }

        // A 100 MB body is refused with 413 (or the connection is cut); the service goes on.
        let big = try UnixHTTPConnectionRaw(path: service.socket)
        try? big.send(Array("POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 104857600\r\n\r\n".utf8))
        let chunk = [UInt8](repeating: UInt8(ascii: "#"), count: 1 << 20)
        for _ in 0..<100 { if (try? big.send(chunk)) == nil { break } }
        let answer = big.readAll()
        #expect(answer.isEmpty || answer.hasPrefix("HTTP/1.1 413"), "\(answer.prefix(200))")
        served("after the 100 MB body")

        // Slowloris: a request trickling in is cut off after the request timeout; others are served meanwhile.
        let slow = try UnixHTTPConnectionRaw(path: service.socket)
        try slow.send(Array("GET /info HTTP/1.1\r\n".utf8))
        let started = Date()
        var cut = false
        for _ in 0..<40 {
            served("while a slow client trickles its headers")
            if (try? slow.send(Array("X-a: b\r\n".utf8))) == nil || slow.isClosed() {
                cut = true
                break
            }
            usleep(100_000)
        }
        #expect(cut, "the slow client was not cut off")
        #expect(Date().timeIntervalSince(started) < 3.5)

        // 10,000 idle connections from one process: beyond its per-process limit they are
        // closed at once; another process is served all along.
        var idle: [UnixHTTPConnectionRaw] = []
        for _ in 0..<10_000 {
            guard let connection = try? UnixHTTPConnectionRaw(path: service.socket) else { break }
            idle.append(connection)
        }
        #expect(idle.count >= 1000, "could open only \(idle.count) connections")
        let other = try CLI.run(["status"], environment: ["IOASID_SOCKET": service.socket])
        #expect(other.status == 0, "\(other.stderr)")
        usleep(200_000)
        let closed = idle.filter { $0.isClosed() }.count
        #expect(closed >= idle.count - 256, "\(closed) of \(idle.count) idle connections closed; the per-process limit is 256")
        idle.removeAll()
        // The service sees those closes asynchronously: until it has, this process may still
        // be at its limit (a new connection is then reset). It must be served again soon.
        var again = false
        for _ in 0..<50 where !again {
            if (try? service.request("GET", "/info"))?.status == 200 { again = true } else { usleep(100_000) }
        }
        #expect(again, "this process was not served within 5 s of closing its idle connections")
    }

    @Test("A client that pipelines 3,000 allocations and reads nothing until it is cut off loses few committed answers: the fast path commits no more while its answers wait unread",
          .enabled(if: ServiceProcess.isBuilt))
    func unreadAnswersStopCommits() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir, systemQuota: 10_000)
        let service = try ServiceProcess(store: store, arguments: ["--request-timeout", "2"])
        defer { service.stop() }
        // Sends everything from a thread, reads nothing for `wait` seconds, then reads to the end.
        let client = """
            import socket, sys, threading, time
            path, n, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(path)
            requests = b"POST /sets/1/ids HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0\\r\\n\\r\\n" * n
            def send():
                try: s.sendall(requests)
                except OSError: pass
            threading.Thread(target=send, daemon=True).start()
            time.sleep(wait)
            s.settimeout(20)
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
                    if data.count(b"HTTP/1.1 200") == n: break
            except OSError: pass
            print(data.count(b"HTTP/1.1 200"))
            """
        func allocated() throws -> Int {
            try #require(ServiceProcess.object(try service.request("GET", "/sets/1").body)["allocated"] as? Int)
        }
        // Read after 10 s, well past the request timeout (2 s after the last answer written, or
        // after a request began to wait): cut off. Before, all 3,000 were committed and 2,722
        // of their answers lost.
        let late = try Self.runPython(["-c", client, service.socket, "3000", "10"])
        let lateAnswers = try #require(Int(late.out), "\(late.stdout) \(late.stderr)")
        let committed = try allocated()
        #expect(lateAnswers > 0)
        #expect(committed - lateAnswers <= 200, "\(committed) committed, \(lateAnswers) answered")
        #expect(committed < 3000, "the rest waited uncommitted")
        // Read within the timeout: every answer arrives.
        let prompt = try Self.runPython(["-c", client, service.socket, "3000", "0.5"])
        #expect(prompt.out == "3000", "\(prompt.stdout) \(prompt.stderr)")
        #expect(try allocated() == committed + 3000)
    }

    @Test("A peer that is neither the store's owner, root nor allowed gets 403 accessDenied; --allow-uid lets it in", .enabled(if: ServiceProcess.isBuilt))
    func peerCredentials() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else {
            print("skipped: needs root, setpriv and curl to connect as a second user (uid 65534)")
            return
        }
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        chmod(dir.path, 0o755)
        let socket = dir.child("public.sock")
        func asNobody() throws -> CLI.Result {
            try CLI.run(["--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s", "-w", "\n%{http_code}", "--unix-socket", socket, "http://localhost/info"],
                        product: "/usr/bin/setpriv")
        }
        do {
            let service = try ServiceProcess(store: store, socket: socket)
            defer { service.stop() }
            chmod(socket, 0o666) // past the file mode, to reach the SO_PEERCRED check
            let refused = try asNobody()
            #expect(refused.stdout.hasSuffix("403"), "\(refused.stdout)")
            #expect(ServiceProcess.errorCode(String(refused.stdout.split(separator: "\n").first ?? "")) == "accessDenied", "\(refused.stdout)")
            #expect(try service.request("GET", "/info").status == 200, "the owner is still served")
        }
        let allowed = try ServiceProcess(store: store, socket: socket, arguments: ["--allow-uid", "65534"])
        defer { allowed.stop() }
        let admitted = try asNobody()
        #expect(admitted.stdout.hasSuffix("200"), "\(admitted.stdout)")
    }

    @Test("/metrics parses as Prometheus text and its figures match status", .enabled(if: ServiceProcess.isBuilt))
    func metrics() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let port = Int.random(in: 20_000...60_000)
        let service = try ServiceProcess(store: store, arguments: ["--metrics", "127.0.0.1:\(port)"])
        defer { service.stop() }
        _ = try service.request("POST", "/sets", #"{"token":"vm:m","quota":10}"#)
        for _ in 0..<3 { _ = try service.request("POST", "/sets/2/ids") }
        _ = try service.request("DELETE", "/sets/2/ids/1")
        _ = try service.request("POST", "/sets/2/ids", #"{"guest":1}"#)
        _ = try service.request("POST", "/sets/99/ids")
        // A failure through /cli is counted by its code, as over the endpoints (it was "exit2").
        #expect(try CLI.run(["--socket", service.socket, "find-set", "999"]).status == 2)
        _ = try service.request("POST", "/subscribers", #"{"name":"lagging"}"#)
        let text = try service.request("GET", "/metrics").body
        let status = ServiceProcess.object(try service.request("GET", "/status").body)
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            samples = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    samples[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
            print(json.dumps(samples))
            """
        let parsed = try Self.runPython(["-c", script], environment: [:], input: text)
        var samples: [String: Double] = [:]
        if parsed.status == 0, let object = try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [String: Double] {
            samples = object
        } else {
            print("prometheus_client not available (\(parsed.stderr.split(separator: "\n").last ?? "")); parsing the text format here")
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let value = Double(parts[1]) else { Issue.record("bad sample line: \(line)"); continue }
                var name = String(parts[0])
                if let brace = name.firstIndex(of: "{") {
                    let labels = name[name.index(after: brace)..<name.index(before: name.endIndex)].split(separator: ",").map { pair -> String in
                        let kv = pair.split(separator: "=", maxSplits: 1)
                        return "\"\(kv[0])\": \(kv[1])"
                    }
                    name = String(name[..<brace]) + "{" + labels.sorted().joined(separator: ", ") + "}"
                } else {
                    name += "{}"
                }
                samples[name] = value
            }
        }
        func value(_ name: String, _ labels: String = "{}") -> Double? { samples[name + labels] }
        #expect(value("ioasid_capacity_ids") == Double((status["capacity"] as? Int ?? 0) - 1))
        #expect(value("ioasid_allocated_ids") == Double(status["allocated"] as? Int ?? -1))
        #expect(value("ioasid_quota_reserved_ids") == Double(status["reserved"] as? Int ?? -1))
        #expect(value("ioasid_quota_unreserved_ids") == Double(status["unreserved"] as? Int ?? -1))
        #expect(value("ioasid_free_pending_ids") == Double(status["freePending"] as? Int ?? -1))
        #expect(value("ioasid_set_allocated_ids", #"{"set": "2"}"#) == 3)
        #expect(value("ioasid_set_quota_ids", #"{"set": "2"}"#) == 10)
        #expect(value("ioasid_operations_total", #"{"op": "alloc"}"#) == 5)
        #expect(value("ioasid_errors_total", #"{"code": "noSuchSet"}"#) == 1)
        #expect(value("ioasid_errors_total", #"{"code": "noSuchID"}"#) == 1)
        #expect(!samples.keys.contains { $0.contains("exit") }, "\(samples.keys.filter { $0.contains("errors") })")
        #expect(value("ioasid_subscriber_lag_events", #"{"subscriber": "lagging"}"#) == 0)
        #expect((value("ioasid_commit_group_operations_count") ?? 0) >= 5)
        #expect((value("ioasid_commit_duration_seconds_count") ?? 0) >= 5)
        // The same text over TCP on --metrics.
        let tcp = try CLI.run(["-s", "http://127.0.0.1:\(port)/metrics"], product: "/usr/bin/curl")
        #expect(tcp.stdout.contains("ioasid_capacity_ids"))
    }

    @Test("Every route is in docs/openapi.yaml and every documented operation is a route")
    func openAPIDocumentsEveryRoute() throws {
        let routes = try String(contentsOfFile: SwiftSnippet.packageRoot + "/Sources/IOASIDService/Routes.swift", encoding: .utf8)
        let spec = try String(contentsOfFile: SwiftSnippet.packageRoot + "/docs/openapi.yaml", encoding: .utf8)
        var served = Set<String>()
        let routePattern = try NSRegularExpression(pattern: #"router\.(get|post|put|delete)\("([^"]+)""#)
        for match in routePattern.matches(in: routes, range: NSRange(routes.startIndex..., in: routes)) {
            guard let method = Range(match.range(at: 1), in: routes), let path = Range(match.range(at: 2), in: routes) else { continue }
            let openAPIPath = routes[path].split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
            served.insert("\(routes[method]) /\(openAPIPath)")
        }
        var documented = Set<String>()
        var currentPath: String?
        for line in spec.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /") { currentPath = String(line.dropFirst(2).dropLast()) }
            else if line.hasPrefix("components:") { currentPath = nil }
            else if let currentPath, let method = ["get", "post", "put", "delete"].first(where: { line == "    \($0):" }) {
                documented.insert("\(method) \(currentPath)")
            }
        }
        #expect(served.count >= 30)
        #expect(served.subtracting(documented).isEmpty, "undocumented: \(served.subtracting(documented).sorted())")
        #expect(documented.subtracting(served).isEmpty, "documented, not served: \(documented.subtracting(served).sorted())")
    }

    @Test("schemathesis finds the server conforming to docs/openapi.yaml, and a broken document failing", .enabled(if: ServiceProcess.isBuilt))
    func schemathesis() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let service = try ServiceProcess(store: try makeServedStore(dir))
        defer { service.stop() }
        var environment: [String: String] = [:]
        if Self.python != "/usr/bin/env" { environment["IOASID_TEST_PYTHON"] = Self.python }
        let script = SwiftSnippet.packageRoot + "/Tools/openapi-check"
        // Standard error joins standard output, so neither pipe can fill while the other is read.
        func check(_ arguments: [String]) throws -> CLI.Result {
            try CLI.run(["-c", "\"$0\" \"$@\" 2>&1", script] + arguments, product: "/bin/bash", environment: environment)
        }
        let good = try check([service.socket, "--max-examples", "3", "--phases", "fuzzing"])
        if good.status == 77 {
            print("skipped: \(good.stdout.split(separator: "\n").last ?? "schemathesis unavailable")")
            return
        }
        #expect(good.status == 0, "\(good.stdout.suffix(3000))")
        // The same check against a document that misstates one response must fail.
        let spec = try String(contentsOfFile: SwiftSnippet.packageRoot + "/docs/openapi.yaml", encoding: .utf8)
        let broken = dir.child("broken.yaml")
        try spec.replacingOccurrences(of: "required: [path, storeID, epoch, schema, version]", with: "required: [path, storeID, epoch, schema, version, uptime]")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        environment["OPENAPI_SPEC"] = broken
        let bad = try check([service.socket, "--max-examples", "2", "--phases", "fuzzing", "--include-operation-id", "info"])
        #expect(bad.status != 0, "schemathesis passed a document that requires a field the server never sends")
    }
}

/// A raw client socket for hostile-client tests.
final class UnixHTTPConnectionRaw {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SupportCheckFailed("socket: \(errno)") }
        let fd = fd
        let result = try UnixSocketAddress.with(path: path) { address, length in connect(fd, address, length) }
        guard result == 0 else {
            close(fd)
            throw SupportCheckFailed("connect: \(errno)")
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return Glibc.send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw SupportCheckFailed("send: \(errno)") }
            offset += n
        }
    }

    /// Whether the peer closed the connection (a read would return end of file now).
    func isClosed() -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) == 0 || entry.revents & Int16(POLLHUP) != 0
    }

    /// Everything until the peer closes (at most 2 s).
    func readAll() -> String {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 200) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
