// ioasid-serve-bench: the service beside the in-process async API, in one run.
//
//   ioasid-serve-bench [--clients 64] [--seconds 3] [--rounds 2] [--curl 100] [--events 200] [--dir DIR]
//
// 1. Throughput: N clients each doing durable allocate+free in a loop, through the socket
//    (one keep-alive connection per client thread) and with the in-process async API
//    (N tasks on one IOASIDStore), alternating rounds on two fresh stores; beside them the
//    ceiling of any server on this machine: the same round trips to a do-nothing echo.
// 2. `curl --unix-socket` of one allocation, exec to exit, K runs.
// 3. Event push latency to a consumer following GET /events/NAME?follow=true: from another
//    client's POST (request sent → event line read), and from a separate process writing the
//    store directly (this process, not the service: commit returned → event line read).
// Runs the `ioasid-serve` found beside this binary.

import Foundation
import IOASIDClient
import IOASIDStore
import LMDB

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var clients = 64
    var seconds = 3.0
    var rounds = 2
    var curlRuns = 100
    var events = 200
    var dir: String?

    init(_ arguments: [String]) {
        var index = 0
        func next() -> String { index += 1; return index < arguments.count ? arguments[index] : "" }
        while index < arguments.count {
            switch arguments[index] {
            case "--clients": clients = Int(next()) ?? clients
            case "--seconds": seconds = Double(next()) ?? seconds
            case "--rounds": rounds = Int(next()) ?? rounds
            case "--curl": curlRuns = Int(next()) ?? curlRuns
            case "--events": events = Int(next()) ?? events
            case "--dir": dir = next()
            default:
                try? FileHandle.standardError.write(contentsOf: Data("usage: ioasid-serve-bench [--clients N] [--seconds S] [--rounds R] [--curl K] [--events E] [--dir DIR]\n".utf8))
                exit(64)
            }
            index += 1
        }
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

func makeStore(_ path: String) throws -> IOASIDStore {
    var options = IOASIDStore.Options()
    options.creation = .createNew
    options.capacity = 1 << 20
    options.systemQuota = 32768
    return try IOASIDStore(path: path, options: options)
}

/// A running ioasid-serve.
final class Server {
    let process = Process()
    let socket: String

    init(store: String) throws {
        socket = store + "/ioasid.sock"
        let binary = (CommandLine.arguments[0] as NSString).deletingLastPathComponent + "/ioasid-serve"
        process.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map { ($0 as NSString).deletingLastPathComponent + "/ioasid-serve" } ?? binary)
        process.arguments = ["--store", store, "--max-connections-per-process", "1024"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<500 {
            if (try? UnixHTTPClient(path: socket).send("GET", "/info"))?.head.status == 200 { return }
            usleep(20_000)
        }
        throw ClientError("ioasid-serve did not start")
    }

    func stop() {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
    }
}

/// The number after `"id":` in a response (no JSON parser on the client's hot path).
func idField(_ body: [UInt8]) -> Int? {
    let key = Array("\"id\":".utf8)
    guard body.count > key.count, let start = (0...(body.count - key.count)).first(where: { Array(body[$0..<$0 + key.count]) == key }) else { return nil }
    var value = 0
    var index = start + key.count
    var digits = 0
    while index < body.count, body[index] >= 48, body[index] <= 57 {
        value = value * 10 + Int(body[index] - 48)
        index += 1
        digits += 1
    }
    return digits > 0 ? value : nil
}

/// N threads, each with a keep-alive connection, allocate+free until the deadline; returns ops/s.
func socketThroughput(socket: String, clients: Int, seconds: Double) -> Double {
    let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: clients)
    counts.initialize(repeating: 0)
    defer { counts.deallocate() }
    let group = DispatchGroup()
    let start = now()
    let deadline = start + seconds
    let failures = UnsafeMutableBufferPointer<Int>.allocate(capacity: clients)
    failures.initialize(repeating: 0)
    defer { failures.deallocate() }
    nonisolated(unsafe) let countsRef = counts
    nonisolated(unsafe) let failuresRef = failures
    for client in 0..<clients {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            guard let connection = try? UnixHTTPConnection(path: socket) else { failuresRef[client] += 1; return }
            while now() < deadline {
                guard let allocated = try? connection.send("POST", "/sets/1/ids", body: Array("{}".utf8)), allocated.head.status == 200,
                    let id = idField(allocated.body)
                else { failuresRef[client] += 1; return }
                guard let freed = try? connection.send("DELETE", "/sets/1/ids/\(id)"), freed.head.status == 200 else { failuresRef[client] += 1; return }
                countsRef[client] += 2
            }
        }
    }
    group.wait()
    let elapsed = now() - start
    if failures.reduce(0, +) > 0 { print("  (socket: \(failures.reduce(0, +)) client failures)") }
    return Double(counts.reduce(0, +)) / elapsed
}

/// What any server could reach here: N client threads, each with its own connected Unix
/// stream socket (`socketpair`) to a server thread that does nothing but answer, make round
/// trips of the sizes the socket rounds exchange, alternately an allocation's (a 99-byte
/// `POST /sets/1/ids` with `{}`, a 142-byte response) and a free's (a 52-byte `DELETE`, a
/// 177-byte response), until the deadline; returns round trips/s. Thread per connection and
/// blocking calls: the least a round trip costs (a write and a wake-up each way), with no
/// parsing and no store.
func echoCeiling(clients: Int, seconds: Double) -> Double {
    // (request, response) bytes, measured with `curl -i` against ioasid-serve for two-digit IDs.
    let exchanges = [(request: 99, response: 142), (request: 52, response: 177)]
    let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: clients)
    counts.initialize(repeating: 0)
    defer { counts.deallocate() }
    nonisolated(unsafe) let countsRef = counts
    let group = DispatchGroup()
    let start = now()
    let deadline = start + seconds
    for client in 0..<clients {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0 else { continue }
        let (clientEnd, serverEnd) = (ends[0], ends[1])
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let responses = exchanges.map { [UInt8](repeating: UInt8(ascii: "x"), count: $0.response) }
            var turn = 0
            while read(serverEnd, &buffer, buffer.count) > 0 {
                _ = responses[turn % 2].withUnsafeBytes { write(serverEnd, $0.baseAddress, $0.count) }
                turn += 1
            }
            close(serverEnd)
        }
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            let requests = exchanges.map { [UInt8](repeating: UInt8(ascii: "x"), count: $0.request) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            var turn = 0
            while now() < deadline {
                let (request, expected) = (requests[turn % 2], exchanges[turn % 2].response)
                guard request.withUnsafeBytes({ write(clientEnd, $0.baseAddress, $0.count) }) == request.count else { break }
                var received = 0
                while received < expected {
                    let n = read(clientEnd, &buffer, buffer.count)
                    if n <= 0 { break }
                    received += n
                }
                if received < expected { break }
                countsRef[client] += 1
                turn += 1
            }
            close(clientEnd)
        }
    }
    group.wait()
    return Double(counts.reduce(0, +)) / (now() - start)
}

/// N tasks allocate+free with the async API until the deadline; returns ops/s.
func inProcessThroughput(store: IOASIDStore, clients: Int, seconds: Double) async -> Double {
    let start = now()
    let deadline = start + seconds
    let total = await withTaskGroup(of: Int.self) { group in
        for _ in 0..<clients {
            group.addTask {
                var done = 0
                while now() < deadline {
                    guard let id = try? await store.allocate(in: SetID(1)) else { return done }
                    guard (try? await store.free(id, in: SetID(1))) != nil else { return done }
                    done += 2
                }
                return done
            }
        }
        return await group.reduce(0, +)
    }
    return Double(total) / (now() - start)
}

/// Exec-to-exit of `curl --unix-socket … -X POST …/sets/1/ids`, in milliseconds.
func curlTimes(socket: String, runs: Int) -> [Double] {
    var times: [Double] = []
    for _ in 0..<runs {
        var pid: pid_t = 0
        let args = ["curl", "-s", "-o", "/dev/null", "--unix-socket", socket, "-X", "POST", "http://localhost/sets/1/ids"]
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let started = now()
        guard posix_spawnp(&pid, "curl", &actions, nil, argv, environ) == 0 else { return [] }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        times.append((now() - started) * 1000)
    }
    return times
}

/// Follows a subscriber's events; records the arrival time of each event by sequence.
final class Follower: Sendable {
    private let arrivals = Locked<[Int: Double]>([:])

    init(socket: String, subscriber: String) {
        Thread.detachNewThread { [self] in
            var pending: [UInt8] = []
            _ = try? UnixHTTPClient(path: socket).stream("GET", "/events/\(subscriber)?follow=true") { piece in
                let arrived = now()
                pending += piece
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Data(pending[..<newline])
                    pending.removeSubrange(...newline)
                    guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let sequence = object["sequence"] as? Int else { continue }
                    arrivals.withLockSignalling { $0[sequence] = arrived }
                }
            }
        }
    }

    func wait(for sequence: Int, timeout: Double = 5) -> Double? {
        arrivals.withLock(waitingUntil: { $0[sequence] != nil }, atMost: Int(timeout * 1e9)) { $0[sequence] }
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let root = options.dir ?? NSTemporaryDirectory() + "ioasid-serve-bench-\(getpid())"
try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: root) }
print("ioasid-serve-bench: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage()); \(options.clients) clients, \(options.seconds) s × \(options.rounds) rounds")

do {
    // 1. Throughput, alternating.
    var socketRates: [Double] = []
    var localRates: [Double] = []
    var echoRates: [Double] = []
    for round in 0..<options.rounds {
        echoRates.append(echoCeiling(clients: options.clients, seconds: options.seconds))
        let localPath = root + "/local-\(round)"
        do {
            let store = try makeStore(localPath)
            localRates.append(await inProcessThroughput(store: store, clients: options.clients, seconds: options.seconds))
        }
        let servedPath = root + "/served-\(round)"
        _ = try makeStore(servedPath)
        let server = try Server(store: servedPath)
        socketRates.append(socketThroughput(socket: server.socket, clients: options.clients, seconds: options.seconds))
        server.stop()
        print(String(format: "  round %d: in-process %.0f ops/s, socket %.0f ops/s (%.2fx), do-nothing echo %.0f round trips/s", round + 1, localRates.last ?? 0, socketRates.last ?? 0, (socketRates.last ?? 0) / (localRates.last ?? 1), echoRates.last ?? 0))
    }
    let bestEcho = echoRates.max() ?? 0
    print(String(format: "ceiling of any server here (%d clients, round trips of an allocation's and a free's sizes to a do-nothing echo thread per connection, best of %d): %.0f/s = %.2fx the in-process API; the service reaches %.2fx of it", options.clients, options.rounds, bestEcho, bestEcho / max(1, localRates.max() ?? 1), (socketRates.max() ?? 0) / max(1, bestEcho)))
    let bestLocal = localRates.max() ?? 0
    let bestSocket = socketRates.max() ?? 0
    print(String(format: "throughput (%d clients, durable allocate+free, best of %d): in-process async API %.0f ops/s, socket %.0f ops/s: %.2fx (floor 0.8x)", options.clients, options.rounds, bestLocal, bestSocket, bestSocket / bestLocal))

    // 2 and 3 on one served store.
    let path = root + "/latency"
    let direct = try makeStore(path)
    try direct.subscribe("bench", filter: .all)
    let server = try Server(store: path)
    defer { server.stop() }
    let follower = Follower(socket: server.socket, subscriber: "bench")
    usleep(200_000)
    var sequence = 0
    // Warm-up: one event each way.
    _ = try UnixHTTPClient(path: server.socket).send("POST", "/sets/1/ids", body: Array("{}".utf8))
    sequence += 1
    _ = follower.wait(for: sequence)
    var fromClient: [Double] = []
    var fromClientResponse: [Double] = []
    var fromProcess: [Double] = []
    let connection = try UnixHTTPConnection(path: server.socket)
    for index in 0..<options.events {
        if index % 2 == 0 {
            let sent = now()
            let response = try connection.send("POST", "/sets/1/ids", body: Array("{}".utf8))
            let answered = now()
            guard response.head.status == 200 else { throw ClientError("allocation failed: \(response.head.status)") }
            sequence += 1
            guard let arrived = follower.wait(for: sequence) else { throw ClientError("event \(sequence) never arrived") }
            fromClient.append((arrived - sent) * 1000)
            fromClientResponse.append((arrived - answered) * 1000)
        } else {
            _ = try direct.allocate(in: SetID(1))
            let committed = now()
            sequence += 1
            guard let arrived = follower.wait(for: sequence) else { throw ClientError("event \(sequence) never arrived") }
            fromProcess.append((arrived - committed) * 1000)
        }
        usleep(2000)
    }
    func describe(_ values: [Double]) -> String {
        String(format: "median %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)", percentile(values, 0.5), percentile(values, 0.99), values.max() ?? .nan, values.count)
    }
    print("event push, another client's POST (request sent -> event read): \(describe(fromClient)) (floor p99 5 ms)")
    print("event push, another client's POST (response read -> event read): \(describe(fromClientResponse))")
    print("event push, a separate process writing the store directly (commit returned -> event read): \(describe(fromProcess)) (floor p99 5 ms)")

    let times = curlTimes(socket: server.socket, runs: options.curlRuns)
    print(String(format: "curl --unix-socket, one allocation, exec to exit: median %.2f ms, p90 %.2f ms, min %.2f ms (n=%d) (floor median 5 ms)", percentile(times, 0.5), percentile(times, 0.9), times.min() ?? .nan, times.count))
    print("load average after: \(loadAverage())")
} catch {
    try? FileHandle.standardError.write(contentsOf: Data("ioasid-serve-bench: \(error)\n".utf8))
    exit(1)
}
