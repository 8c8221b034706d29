import ArgumentParser
import Foundation
import IOASIDStore
import Logging

/// Shell completions that ask the store (the shell runs `ioasid ---completion …`,
/// which calls these): set IDs and subscriber names of the store named on the
/// command line (`--store`), else `$IOASID_STORE`, else `./ioasid-store`. They
/// open the store read-only and answer nothing on any error.
enum Completions {
    /// The live sets' IDs.
    static let setIDs = CompletionKind.custom { words, _, prefix in
        guard let store = openForCompletion(words) else { return [] }
        let sets = (try? store.sets()) ?? []
        return sets.map { String($0.id.rawValue) }.filter { $0.hasPrefix(prefix) }
    }

    /// The durable subscribers' names.
    static let subscribers = CompletionKind.custom { words, _, prefix in
        guard let store = openForCompletion(words) else { return [] }
        let names = ((try? store.subscribers()) ?? []).map(\.name)
        return names.filter { $0.hasPrefix(prefix) && !$0.unicodeScalars.contains { $0.value < 0x20 || $0 == " " } }
    }

    /// The event kinds `--kind` takes.
    static let eventKinds = CompletionKind.list(Event.Kind.allCases.map(\.rawValue))

    /// Opens the store the words name, read-only, quietly.
    static func openForCompletion(_ words: [String]) -> IOASIDStore? {
        var path: String?
        var index = 0
        while index < words.count {
            if case .value(let value) = ArgumentScan.option("--store", in: words, at: &index) { path = value }
            index += 1
        }
        let resolved = path ?? EnvironmentVariables.nonEmpty("IOASID_STORE") ?? "./ioasid-store"
        var options = IOASIDStore.Options()
        options.creation = .openExisting
        options.readOnly = true
        return try? IOASIDStore(path: Text.expandingTilde(resolved), options: options)
    }
}
