public import ArgumentParser
import Foundation
import Hummingbird
import IOASIDCommandLine
import IOASIDStore
import LMDB
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `ioasid-serve` (also `ioasid serve`): owns one store and serves it over
/// HTTP/1.1 on a Unix domain socket, with pushed events and Prometheus metrics.
///
/// Hummingbird 2 on SwiftNIO: it binds a Unix socket, streams response bodies
/// (events, commands' output), takes channel handlers of our own (the
/// `SO_PEERCRED` check and the limits) and runs as a swift-service-lifecycle
/// `Service`, which gives graceful shutdown on SIGTERM/SIGINT.
public struct ServeCommand: AsyncParsableCommand {
    /// The command's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "ioasid-serve",
        abstract: "Serve an IOASID store over HTTP/1.1 on a Unix socket.",
        discussion: """
            Endpoints: docs/openapi.yaml. Errors are the CLI's {"error":{"code","message"}} with 409 (refused by a \
            rule), 404 (not found), 503 (store unusable) or 400 (bad request). The socket is created 0600 under a \
            private name beside its path and moved there once the server listens, never over another server's \
            socket; a stale socket of a dead server is replaced, a live one is refused. A path longer than a socket \
            address holds (107 bytes) is reached through its directory. Peers are checked with SO_PEERCRED: the \
            store's owner and root, plus --allow-uid / --allow-gid. SIGTERM or SIGINT: stop accepting, finish \
            requests in flight, end event streams, close the store, remove the socket.
            """
    )

    @Option(help: ArgumentHelp("The store directory (default: $IOASID_STORE, else ./ioasid-store).", valueName: "dir"))
    var store: String?

    @Option(help: ArgumentHelp("The Unix socket to listen on (default: STORE/ioasid.sock).", valueName: "path"))
    var socket: String?

    @Option(help: ArgumentHelp("Serve Prometheus metrics over TCP on ADDR:PORT (loopback if ADDR is empty); off by default. /metrics on the socket works when this is given.", valueName: "addr:port"))
    var metrics: String?

    @Option(name: .customLong("allow-uid"), help: ArgumentHelp("Also allow this user ID (repeatable).", valueName: "uid"))
    var allowUIDs: [UInt32] = []

    @Option(name: .customLong("allow-gid"), help: ArgumentHelp("Also allow peers whose primary group is this (repeatable); the socket is then group-accessible.", valueName: "gid"))
    var allowGIDs: [UInt32] = []

    @Option(name: .customLong("max-connections"), help: ArgumentHelp("Most open connections.", valueName: "n"))
    var maxConnections = 4096

    @Option(name: .customLong("max-connections-per-process"), help: ArgumentHelp("Most open connections of one client process.", valueName: "n"))
    var maxConnectionsPerProcess = 256

    @Option(name: .customLong("max-body"), help: ArgumentHelp("Largest request body in bytes (a batch of at most 16 MiB reaches /cli base64-encoded: 22 MiB).", valueName: "bytes"))
    var maxBody = 23 << 20

    @Option(name: .customLong("request-timeout"), help: ArgumentHelp("Seconds a client has to send a whole request.", valueName: "s"))
    var requestTimeout = 10

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Seconds an idle keep-alive connection stays open.", valueName: "s"))
    var idleTimeout = 60

    @Option(name: .customLong("command-threads"), help: ArgumentHelp("Threads that run commands for clients.", valueName: "n"))
    var commandThreads = 64

    @Flag(name: .customLong("json-logs"), help: "Log JSON lines instead of text.")
    var jsonLogs = false

    @Flag(help: "Log each request (debug level).")
    var verbose = false

    /// Creates the command (ArgumentParser fills in the options).
    public init() {}

    /// Checks the options.
    public func validate() throws {
        guard maxConnections > 0, maxConnectionsPerProcess > 0 else { throw ValidationError("connection limits must be positive") }
        guard maxBody > 0, requestTimeout > 0, idleTimeout > 0, commandThreads > 0 else {
            throw ValidationError("--max-body, --request-timeout, --idle-timeout and --command-threads must be positive")
        }
        if let metrics, Self.parseAddress(metrics) == nil { throw ValidationError("--metrics must be ADDR:PORT or :PORT, got '\(metrics)'") }
    }

    static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    /// Runs the service until SIGTERM or SIGINT.
    public func run() async throws {
        let level: Logger.Level = verbose ? .debug : .info
        let json = jsonLogs
        LoggingSystem.bootstrap { label in
            var handler = JournalLogHandler(label: label, json: json)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ioasid.serve")
        // Every file and the socket this process makes is private unless said otherwise.
        umask(0o177)
        raiseDescriptorLimit()

        // Absolute: clients act on the path /info reports from their own working directories.
        let storePath = Self.absolute(store ?? ProcessInfo.processInfo.environment["IOASID_STORE"].flatMap { $0.isEmpty ? nil : $0 } ?? "./ioasid-store")
        var options = IOASIDStore.Options()
        options.creation = .openExisting
        options.synchronousWritesThroughWriter = true
        options.logger = logger
        let store: IOASIDStore
        do { store = try IOASIDStore(path: storePath, options: options) } catch {
            logger.critical("cannot open the store", metadata: ["store": "\(storePath)", "error": "\(error.message)", "code": "\(error.code.name)"])
            throw ExitCode(3)
        }
        let socketPath = socket ?? (store.path as NSString).appendingPathComponent("ioasid.sock")
        let listening: ListeningSocket
        do { listening = try ListeningSocket(path: socketPath) } catch {
            logger.critical("cannot listen", metadata: ["socket": "\(socketPath)", "error": "\(error.message)"])
            throw ExitCode(3)
        }
        defer { listening.close() }

        let metricsSystem = metrics == nil ? nil : ServiceMetrics()
        let core: ServiceCore
        do {
            core = try ServiceCore(store: store, metrics: metricsSystem, logger: logger, maxBody: maxBody, commandThreads: commandThreads)
        } catch {
            logger.critical("cannot start the command threads", metadata: ["error": "\(error)"])
            throw ExitCode(3)
        }
        var ownerUID = getuid()
        if let status = try? FileSystem.status(store.path) { ownerUID = status.owner }
        let policy = AccessPolicy(
            ownerUID: ownerUID, allowedUIDs: Set(allowUIDs), allowedGIDs: Set(allowGIDs),
            maxConnections: maxConnections, maxConnectionsPerProcess: maxConnectionsPerProcess,
            requestTimeout: .seconds(Int64(requestTimeout))
        )
        let table = core.connections
        let boundSocket = Locked<[UInt8]?>(nil)
        let placed = Locked<Bool>(false)
        let groupMode = !allowGIDs.isEmpty || !allowUIDs.isEmpty
        let firstGID = allowGIDs.first
        let onlyGroups = allowUIDs.isEmpty
        let app = Application(
            router: core.routes(),
            server: .http1(configuration: .init(
                additionalChannelHandlers: [ConnectionGuard(policy: policy, table: table, logger: logger, hotPath: core)],
                idleTimeout: .seconds(Int64(idleTimeout))
            )),
            // Bound at a private name, moved to the socket path once listening (ListeningSocket).
            configuration: .init(address: .unixDomainSocket(path: listening.bindPath), serverName: "ioasid", backlog: 1024),
            onServerRunning: { channel in
                // Peers other than the owner need the socket's mode; SO_PEERCRED still decides.
                if groupMode {
                    if let firstGID { _ = chown(listening.privatePath, uid_t.max, firstGID) }
                    _ = chmod(listening.privatePath, firstGID != nil && onlyGroups ? 0o660 : 0o666)
                }
                do throws(SocketPathError) {
                    // Which socket is this server's: at shutdown, only this one is removed.
                    let identity = try listening.moveIntoPlace()
                    boundSocket.withLock { $0 = identity }
                    placed.withLock { $0 = true }
                    logger.info("listening", metadata: ["socket": "\(socketPath)", "store": "\(store.path)", "pid": "\(getpid())"])
                } catch {
                    logger.critical("cannot listen", metadata: ["socket": "\(socketPath)", "error": "\(error.message)"])
                    try? await channel.close()
                }
            },
            logger: logger
        )
        var services: [any Service] = [app]
        if let metrics, let (host, port) = Self.parseAddress(metrics) {
            let router = Router()
            router.get("/metrics") { _, _ in core.metricsResponse() }
            services.append(Application(
                router: router, configuration: .init(address: .hostname(host, port: port), serverName: "ioasid-metrics"),
                onServerRunning: { _ in logger.info("metrics", metadata: ["address": "\(host):\(port)"]) },
                logger: logger
            ))
        }
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        var failed = false
        do {
            try await group.run()
        } catch {
            logger.error("service stopped", metadata: ["error": "\(error)"])
            failed = true
        }
        core.executor.shutdown()
        listening.remove(identity: boundSocket.withLock { $0 })
        logger.info("stopped", metadata: ["store": "\(store.path)"])
        if failed || !placed.withLock({ $0 }) { throw ExitCode(3) }
    }

    /// `path` from the working directory when relative.
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }

    /// Many idle clients must not exhaust descriptors before the connection limit does.
    func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let wanted = rlim_t(maxConnections + 1024)
        if limit.rlim_cur < wanted {
            limit.rlim_cur = min(wanted, limit.rlim_max)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}

/// swift-log to standard error, journald-friendly: under systemd
/// (`$JOURNAL_STREAM` set) each line starts with its syslog priority `<N>` and
/// carries no timestamp (journald adds one); elsewhere an RFC 3339 time leads.
/// With `--json-logs`, one JSON object per line.
struct JournalLogHandler: LogHandler {
    let label: String
    let json: Bool
    let journald = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, json: Bool) {
        self.label = label
        self.json = json
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let line: String
        if json {
            var object: [String: String] = ["level": "\(event.level)", "message": "\(event.message)", "label": label]
            if !journald { object["time"] = Date().formatted(.iso8601) }
            for (key, value) in all { object[key] = "\(value)" }
            line = CommandLineJSON.encode(object)
        } else {
            // Control characters escaped: a client's text in a message cannot forge a journal line.
            let fields = all.sorted { $0.key < $1.key }.map { Names.escaped("\($0.key)=\($0.value)") }.joined(separator: " ")
            let text = "\(event.level) \(Names.escaped(event.message.description))" + (fields.isEmpty ? "" : " " + fields)
            line = journald ? "<\(Self.priority(event.level))>" + text : Date().formatted(.iso8601) + " " + text
        }
        try? SystemFile.standardError.writeAll(Array((line + "\n").utf8))
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

extension ServeCommand {
    /// The process's own arguments after its name; one that is not UTF-8 text is a
    /// validation error (exit 64), never read with U+FFFD in place of its bytes.
    public static func processArguments() throws -> [String] {
        switch ProcessArguments.decoded() {
        case .success(let arguments): return arguments
        case .failure(let bad): throw ValidationError(bad.message + " (paths must be UTF-8)")
        }
    }
}
