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

    @Test("Pipelined requests are answered in order and take effect in order, the fast path's (allocate, free) and the router's alike",
          .enabled(if: ServiceProcess.isBuilt))
    func pipelinedInOrder() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let service = try ServiceProcess(store: store)
        defer { service.stop() }
        let first = try #require(ServiceProcess.object(try service.request("POST", "/sets/1/ids").body)["id"] as? Int)
        // One write: router requests first, fast-path ones (allocate, free) among them.
        let requests = [
            "GET /sets/1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /sets/1/ids HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            "GET /sets/1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "DELETE /sets/1/ids/\(first) HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /ids/\(first) HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        // Then fast-path requests first: the router's wait for them.
        + [
            "POST /sets/1/ids HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "POST /sets/1/ids HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            "GET /sets/1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /sets/1/ids HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"guest\":77}",
            "DELETE /sets/1/ids/99999 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /sets/1 HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for (index, batch) in [Array(requests[..<5]), Array(requests[5...])].enumerated() {
            let responses = try Self.exchange(service.socket, batch.joined(), count: batch.count)
            let bodies = responses.map { ServiceProcess.object($0.body) }
            if index == 0 {
                #expect(responses.map(\.status) == [200, 200, 200, 200, 404], "\(responses)")
                #expect(bodies[0]["allocated"] as? Int == 1, "\(responses[0].body)")
                #expect(bodies[1]["id"] as? Int == first + 1, "\(responses[1].body)")
                #expect(bodies[2]["allocated"] as? Int == 2, "the router saw the allocation before it: \(responses[2].body)")
                #expect(responses[3].body == "{\"freed\":1,\"ids\":[{\"id\":\(first),\"state\":\"free\"}],\"set\":1}\n", "\(responses[3].body)")
                #expect(ServiceProcess.errorCode(responses[4].body) == "noSuchID", "the router saw the free before it: \(responses[4].body)")
            } else {
                #expect(responses.map(\.status) == [200, 200, 200, 200, 404, 200], "\(responses)")
                #expect(bodies[0]["id"] as? Int == first, "the lowest free ID: \(responses[0].body)")
                #expect(bodies[1]["id"] as? Int == first + 2, "\(responses[1].body)")
                #expect(bodies[2]["allocated"] as? Int == 3, "the router saw both allocations before it: \(responses[2].body)")
                #expect(bodies[3]["id"] as? Int == first + 3, "\(responses[3].body)")
                #expect(ServiceProcess.errorCode(responses[4].body) == "noSuchID", "\(responses[4].body)")
                #expect(bodies[5]["allocated"] as? Int == 4, "\(responses[5].body)")
            }
            for response in responses {
                #expect(response.headers["content-type"] == "application/json" && response.headers["server"] == "ioasid" && response.headers["date"] != nil,
                        "\(response.headers)")
            }
        }
        // While a fast-path allocation waits for the write lock (held here, by another
        // process's writer as it were), a router request behind it waits too: answered
        // at once, its response would overtake the allocation's and miss its effect.
        let holder = try IOASIDStore(path: store)
        let locked = DispatchSemaphore(value: 0)
        let writer = Thread {
            try? holder.write { _ in
                locked.signal()
                usleep(400_000)
            }
        }
        writer.start()
        try #require(locked.wait(timeout: .now() + 30) == .success, "the store's write lock was not taken")
        let blocked = try Self.exchange(service.socket, [
            "POST /sets/1/ids HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET /sets/1 HTTP/1.1\r\nHost: x\r\n\r\n",
        ].joined(), count: 2)
        #expect(ServiceProcess.object(blocked[0].body)["id"] as? Int == first + 4, "\(blocked)")
        #expect(ServiceProcess.object(blocked[1].body)["allocated"] as? Int == 5, "\(blocked)")
        while !writer.isFinished { usleep(10_000) }
        #expect(try CLI.run(["--store", store, "verify"]).status == 0)
    }

    @Test("A request that does not keep its connection alive (HTTP/1.0 without keep-alive, Connection: close in any case or among others) is answered with Connection: close and the connection closed; others stay open; HTTP/1.0 is answered in HTTP/1.0, a stream unchunked",
          .enabled(if: ServiceProcess.isBuilt))
    func closingRequestsClose() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let service = try ServiceProcess(store: store)
        defer { service.stop() }
        // readAll waits up to 2 s for the close: well inside the request timeout (10 s), which closes idle connections too.
        let closing = [
            "POST /sets/1/ids HTTP/1.0\r\n\r\n", "GET /sets/1 HTTP/1.0\r\nConnection: close\r\n\r\n", "GET /status HTTP/1.0\r\nHost: x\r\n\r\n",
            "POST /sets/1/ids HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", "GET /sets/1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
        ]
        let open = [
            "GET /sets/1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "POST /sets/1/ids HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /sets/1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
        ]
        for request in closing + open {
            let connection = try UnixHTTPConnectionRaw(path: service.socket)
            try connection.send(Array(request.utf8))
            let response = connection.readAll().lowercased()
            let closes = closing.contains(request)
            // An HTTP/1.0 request is answered in HTTP/1.0; a kept HTTP/1.0 connection says so.
            let http10 = request.contains("HTTP/1.0")
            #expect(response.hasPrefix(http10 ? "http/1.0 200 " : "http/1.1 200 "), "\(request): \(response)")
            #expect(response.contains("\r\nconnection: close\r\n") == closes, "\(request): \(response)")
            #expect(response.contains("\r\nconnection: keep-alive\r\n") == (http10 && !closes), "\(request): \(response)")
            #expect(connection.isClosed() == closes, "\(request)")
        }
        #expect(try CLI.run(["--store", store, "--json", "status"]).out.contains(#""allocated":3"#))

        // A body without a length (a followed event stream) is not chunked for an HTTP/1.0 client, which could not
        // read it: the close of the connection ends it, so the response says close even to a keep-alive request.
        #expect(try CLI.run(["--store", store, "events", "subscribe", "kvm"]).status == 0)
        let follower = try UnixHTTPConnectionRaw(path: service.socket)
        try follower.send(Array("GET /events/kvm?follow=true HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".utf8))
        #expect(try service.request("POST", "/sets/1/ids").status == 200)
        let stream = follower.readAll()
        let parts = stream.components(separatedBy: "\r\n\r\n")
        #expect(stream.hasPrefix("HTTP/1.0 200 ") && !stream.lowercased().contains("transfer-encoding"), "\(stream)")
        #expect(stream.lowercased().contains("\r\nconnection: close\r\n"), "\(stream)")
        #expect(parts.count == 2 && parts[1].hasPrefix("{") && parts[1].contains(#""kind":"ALLOC""#), "the event line as it is: \(stream)")
    }

    /// Writes `requests` on one new connection at once and reads `count` responses (each with a Content-Length).
    static func exchange(_ socket: String, _ requests: String, count: Int) throws -> [(status: Int, headers: [String: String], body: String)] {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SupportCheckFailed("socket: \(errno)") }
        defer { close(fd) }
        let connected = try UnixSocketAddress.with(path: socket) { address, length in connect(fd, address, length) }
        guard connected == 0 else { throw SupportCheckFailed("connect: \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(requests.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else { throw SupportCheckFailed("short write") }
        var received: [UInt8] = []
        var responses: [(status: Int, headers: [String: String], body: String)] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while responses.count < count {
            // Whole responses already in `received` first.
            if let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                let lines = String(decoding: received[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                let length = Int(headers["content-length"] ?? "") ?? 0
                if received.count - end.upperBound >= length {
                    let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
                    responses.append((status, headers, String(decoding: received[end.upperBound..<end.upperBound + length], as: UTF8.self)))
                    received.removeFirst(end.upperBound + length)
                    continue
                }
            }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { throw SupportCheckFailed("the connection ended after \(responses.count) of \(count) responses: \(responses)") }
            received += buffer[..<n]
        }
        return responses
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

    @Test("A service whose socket was removed and taken by a second service leaves the second's socket at its shutdown (SwiftNIO removed the path it bound, whatever was there)",
          .enabled(if: ServiceProcess.isBuilt))
    func shutdownLeavesAnotherServersSocket() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let first = try ServiceProcess(store: try makeServedStore(dir, "first"))
        let second = try makeServedStore(dir, "second")
        // An operator removes the first's socket and starts another service at the same path.
        #expect(unlink(first.socket) == 0)
        let other = try ServiceProcess(store: second, socket: first.socket)
        #expect(first.stop() == 0)
        var st = stat()
        #expect(lstat(first.socket, &st) == 0, "the second service's socket is still there")
        let info = ServiceProcess.object(try other.request("GET", "/info").body)
        #expect(info["path"] as? String == second, "and it is the second service that answers")
        #expect(other.stop() == 0)
        #expect(lstat(first.socket, &st) != 0, "removed at the second's shutdown")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.child("first")).filter { $0.hasPrefix(".ioasid-") }
        #expect(leftovers.isEmpty, "no private socket name left behind: \(leftovers)")
    }

    @Test("Services started together at one socket path: one listens there, the others exit 3 and leave its socket in place",
          .enabled(if: ServiceProcess.isBuilt))
    func servicesStartedTogether() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let stores = try (0..<3).map { try makeServedStore(dir, "store\($0)") }
        let socket = dir.child("shared.sock")
        let starts = try stores.map { try CLI.start("ioasid-serve", ["--store", $0, "--socket", socket]) }
        defer { for s in starts where s.process.isRunning { kill(s.process.processIdentifier, SIGKILL) } }
        var answer: [String: Any] = [:]
        for _ in 0..<1000 where answer.isEmpty {
            if let response = try? UnixHTTPClient(path: socket).send("GET", "/info"), response.head.status == 200 {
                answer = ServiceProcess.object(String(decoding: response.body, as: UTF8.self))
            } else {
                usleep(20_000)
            }
        }
        // The losers find the path taken (before binding, or when moving their socket there) and exit.
        for _ in 0..<200 where starts.filter({ $0.process.isRunning }).count > 1 { usleep(50_000) }
        let running = starts.filter { $0.process.isRunning }
        #expect(running.count == 1, "one service runs")
        for s in starts where !s.process.isRunning { #expect(s.process.terminationStatus == 3) }
        let winner = try #require(answer["path"] as? String)
        #expect(running.count == 1 && stores.firstIndex(of: winner) == starts.firstIndex { $0.process.isRunning },
                "the service that answers is the one still running")
        let again = try UnixHTTPClient(path: socket).send("GET", "/info")
        #expect(ServiceProcess.object(String(decoding: again.body, as: UTF8.self))["path"] as? String == winner)
        for s in running {
            kill(s.process.processIdentifier, SIGTERM)
            s.process.waitUntilExit()
            #expect(s.process.terminationStatus == 0)
        }
    }

    @Test("A store deeper than a socket address holds (108 bytes) is served at its default socket, which the CLI reaches with --socket",
          .enabled(if: ServiceProcess.isBuilt))
    func deepSocketPath() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let deep = dir.child(String(repeating: "d", count: 60)) + "/" + String(repeating: "e", count: 60)
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        let store = deep + "/store"
        #expect(try CLI.run(["--store", store, "init", "--capacity", "1024"]).status == 0)
        #expect((store + "/ioasid.sock").utf8.count > UnixSocketAddress.capacity)
        let service = try ServiceProcess(store: store)
        let set = try CLI.run(["--socket", service.socket, "set", "create", "--token", "vm:deep", "--quota", "4"])
        #expect(set.status == 0, "\(set.stderr)")
        let id = try CLI.run(["--socket", service.socket, "alloc", "--set", set.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(id.status == 0 && id.stdout == "1\n", "\(id.stderr)")
        #expect(try CLI.run(["--store", store, "find-set", "1"]).stdout == set.stdout, "the served store is the deep one")
        // A second service at the same deep path is refused: the first is seen listening through the long path.
        let second = try CLI.run(["--store", store], product: "ioasid-serve")
        #expect(second.status == 3)
        #expect(second.stderr.contains("another server is listening"), "\(second.stderr)")
        #expect(service.stop() == 0)
        var st = stat()
        #expect(lstat(service.socket, &st) != 0, "removed on SIGTERM")
    }

    @Test("`ioasid serve --socket PATH`, the documented form, listens at PATH wherever --socket stands (it used to listen at STORE/ioasid.sock)",
          .enabled(if: ServiceProcess.isBuilt))
    func serveListensWhereToldThroughTheCLI() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let socket = dir.child("elsewhere.sock")
        for arguments in [
            ["--store", store, "serve", "--socket", socket],
            ["serve", "--socket", socket, "--store", store],
            ["--socket", socket, "--store", store, "serve"],
        ] {
            let running = try CLI.start("ioasid", arguments)
            var answered = false
            for _ in 0..<500 where !answered && running.process.isRunning {
                answered = (try? UnixHTTPClient(path: socket).send("GET", "/info").head.status) == 200
                if !answered { usleep(20_000) }
            }
            #expect(answered, "\(arguments): no answer at \(socket)")
            #expect(!FileManager.default.fileExists(atPath: store + "/ioasid.sock"), "\(arguments)")
            if running.process.isRunning { kill(running.process.processIdentifier, SIGTERM) }
            for _ in 0..<100 where running.process.isRunning { usleep(100_000) }
            if running.process.isRunning { kill(running.process.processIdentifier, SIGKILL) }
            running.process.waitUntilExit()
            #expect(running.process.terminationStatus == 0, "\(arguments)")
            #expect(!FileManager.default.fileExists(atPath: socket), "removed on SIGTERM")
        }
    }

    @Test("A service started with a relative --store reports its store's absolute path: a client's backup or dump from another directory acts on the served store",
          .enabled(if: ServiceProcess.isBuilt))
    func relativeStorePathIsMadeAbsolute() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try makeServedStore(dir, "served")
        let socket = dir.child("r.sock")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.path(of: "ioasid-serve"))
        process.arguments = ["--store", "served", "--socket", socket]
        process.currentDirectoryURL = URL(fileURLWithPath: dir.path)
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { kill(process.processIdentifier, SIGTERM); process.waitUntilExit() }
        var info: [String: Any] = [:]
        for _ in 0..<500 where info.isEmpty {
            if let response = try? UnixHTTPClient(path: socket).send("GET", "/info"), response.head.status == 200 {
                info = ServiceProcess.object(String(decoding: response.body, as: UTF8.self))
            } else {
                usleep(20_000)
            }
        }
        #expect(info["path"] as? String == dir.child("served"), "\(info)")
        // A client elsewhere, beside a decoy of the same name, dumps the served store.
        let elsewhere = dir.child("elsewhere")
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: false)
        #expect(try CLI.run(["--store", elsewhere + "/served", "init", "--capacity", "4096"]).status == 0)
        let dump = try CLI.run(["-c", "cd \"$1\" && \"$0\" --socket \"$2\" dump", CLI.path(of: "ioasid"), elsewhere, socket], product: "/bin/sh")
        #expect(dump.stdout.contains("meta capacity: value=65536"), "\(dump.stdout.prefix(300)) \(dump.stderr)")
    }

    @Test("A body over --max-body is answered 413 with the bodyTooLarge error document; a batch of 16.25 MB goes through the socket, one over 16 MiB is refused as it is without it",
          .enabled(if: ServiceProcess.isBuilt))
    func bodyLimits() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        let small = try ServiceProcess(store: store, socket: dir.child("small.sock"), arguments: ["--max-body", "1000"])
        for target in ["/sets", "/batch", "/cli", "/sets/1/ids"] {
            let response = try small.request("POST", target, String(repeating: "a", count: 5000))
            #expect(response.status == 413, "\(target): \(response)")
            #expect(ServiceProcess.errorCode(response.body) == "bodyTooLarge", "\(target): \(response.body)")
        }
        small.stop()
        let service = try ServiceProcess(store: store)
        defer { service.stop() }
        let comment = "# " + String(repeating: "x", count: 65_000) + "\n"
        let big = String(repeating: comment, count: 250) + "alloc --set 1\n"  // 16.25 MB: 21.7 MB in base64
        let result = try CLI.run(["--socket", service.socket, "batch"], input: big)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.out == "1", "the batch allocated the first free ID: \(result.stdout)")
        let tooBig = String(repeating: comment, count: 270) + "alloc --set 1\n"
        for arguments in [["--socket", service.socket, "--json", "batch"], ["--store", store, "--json", "batch"]] {
            let refused = try CLI.run(arguments, input: tooBig)
            #expect(refused.status == 64, "\(arguments): \(refused.stderr)")
            #expect((refused.errorDocument?["message"] as? String)?.hasPrefix("standard input is longer than 16777216 bytes") == true, "\(refused.stderr)")
        }
    }

    @Test("SIGTERM stops a service with a command following events through /cli: the command is stopped and says so (exit 3), the service exits at once",
          .enabled(if: ServiceProcess.isBuilt))
    func shutdownStopsAFollowingCommand() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try makeServedStore(dir)
        #expect(try CLI.run(["--store", store, "events", "subscribe", "agent1"]).status == 0)
        // An ALLOC for the tail to print first: once it has, it follows.
        #expect(try CLI.run(["--store", store, "alloc", "--set", "1"]).status == 0)
        let service = try ServiceProcess(store: store)
        let tail = try CLI.start("ioasid", ["--socket", service.socket, "--json", "events", "tail", "agent1", "--follow"])
        let first = tail.out.fileHandleForReading.availableData
        #expect(String(decoding: first, as: UTF8.self).contains("\"kind\":"), "\(String(decoding: first, as: UTF8.self))")
        usleep(200_000)
        #expect(tail.process.isRunning)
        kill(service.process.processIdentifier, SIGTERM)
        for _ in 0..<100 where service.process.isRunning { usleep(100_000) }
        let stopped = !service.process.isRunning
        if !stopped { service.crash() }
        #expect(stopped, "the service still ran 10 s after SIGTERM, waiting for the command")
        #expect(!stopped || service.process.terminationStatus == 0)
        if tail.process.isRunning { kill(tail.process.processIdentifier, SIGKILL) }
        let stderr = String(decoding: tail.err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        tail.process.waitUntilExit()
        #expect(tail.process.terminationStatus == 3, "\(stderr)")
        #expect(stderr.contains("the service is shutting down"), "\(stderr)")
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
        #expect(nowhere.stderr.contains("ioasid: hint: start the service"), "\(nowhere.stderr)")
        // So is one for a command that runs in the client on the service's store (backup).
        let backup = try CLI.run(["--socket", dir.child("none.sock"), "backup", dir.child("copy")])
        #expect(backup.status == 3 && backup.stderr.contains("cannot reach the ioasid service"), "\(backup.stderr)")
        #expect(backup.stderr.contains("ioasid: hint: start the service") && !backup.stderr.contains("disk space"), "\(backup.stderr)")
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
