import ArgumentParser
import Foundation
import IOASIDStore
import Logging

/// Options every command accepts.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store directory (default: $IOASID_STORE, else ./ioasid-store).", valueName: "path"))
    var store: String?

    @Flag(name: .long, help: "Print one JSON document (sorted keys) instead of text.")
    var json = false

    @Flag(name: .long, help: "Log what the store does to stderr.")
    var verbose = false

    /// The store path after defaults.
    var storePath: String {
        store ?? ProcessInfo.processInfo.environment["IOASID_STORE"] ?? "./ioasid-store"
    }

    /// Store options for this invocation.
    func storeOptions(creation: IOASIDStore.Creation = .openExisting) -> IOASIDStore.Options {
        var options = IOASIDStore.Options()
        options.creation = creation
        if verbose {
            var logger = Logger(label: "ioasid") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .debug
            options.logger = logger
        }
        return options
    }

    /// Opens the existing store to change it.
    func openStore() throws(IOASIDError) -> IOASIDStore {
        try IOASIDStore(path: storePath, options: storeOptions())
    }

    /// Opens the existing store read-only: nothing is written (not even a
    /// migration), so it works on read-only media and beside a long write.
    func openStoreForReading() throws(IOASIDError) -> IOASIDStore {
        var options = storeOptions()
        options.readOnly = true
        return try IOASIDStore(path: storePath, options: options)
    }
}
