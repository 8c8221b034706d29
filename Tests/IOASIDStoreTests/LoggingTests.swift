import Foundation
import IOASIDStore
import IOASIDTestSupport
import Logging
import Synchronization
import Testing

/// Collects what a logger was given, for tests.
private final class LogRecorder: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    var all: [Entry] { entries.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "ioasid.test") { _ in Handler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let entry = Entry(
                level: event.level, message: "\(event.message)",
                metadata: (event.metadata ?? [:]).mapValues { "\($0)" }
            )
            recorder.entries.withLock { $0.append(entry) }
        }
    }
}

@Suite("What the store logs")
struct LoggingTests {
    @Test("Initialising, migrating and opening a copy are logged, with their details")
    func lifecycle() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let recorder = LogRecorder()
        var options = IOASIDStore.Options()
        options.capacity = 4096
        options.systemQuota = 64
        options.logger = recorder.logger
        let path = dir.child("new")
        _ = try IOASIDStore(path: path, options: options)
        let initialised = recorder.all.first { $0.message == "initialised store" }
        #expect(initialised?.level == .info && initialised?.metadata["capacity"] == "4096", "\(recorder.all.map(\.message))")

        // A copy of the data file (as a restore or a move makes) starts a new epoch when first opened for writing.
        let copy = dir.child("copy")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(atPath: path + "/data.mdb", toPath: copy + "/data.mdb")
        let copied = try IOASIDStore(path: copy, options: options)
        let notice = recorder.all.first { $0.message.hasPrefix("store is a copy: started epoch") }
        #expect(notice?.level == .notice && notice?.metadata["path"] == copy, "\(recorder.all.map(\.message))")
        #expect(notice?.message == "store is a copy: started epoch \(try copied.read { try $0.epoch() })")

        // An old schema's store is migrated on open, one message per migration.
        let old = try loadFixtureFiles("schema-v3", into: dir)
        _ = try IOASIDStore(path: old, options: options)
        let migrations = recorder.all.filter { $0.message == "applied migration" }
        #expect(!migrations.isEmpty && migrations.allSatisfy { $0.metadata["number"] != nil && $0.metadata["name"] != nil }, "\(recorder.all.map(\.message))")
    }
}
