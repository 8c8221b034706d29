package import Foundation
package import IOASIDStore
import LMDB

/// Runs `body` against a new real store in a temporary directory, then checks
/// every invariant of the store (`verify()`), failing when any is broken.
package func withStore<R>(
    capacity: UInt32 = 1 << 20,
    systemQuota: UInt32 = 32768,
    _ body: (IOASIDStore) throws -> R
) throws -> R {
    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    let store = try IOASIDStore(path: dir.child("store"), options: testOptions(capacity: capacity, systemQuota: systemQuota))
    let result = try body(store)
    try expectClean(store)
    return result
}

/// ``withStore(capacity:systemQuota:_:)`` for async bodies.
package func withStore<R>(
    capacity: UInt32 = 1 << 20,
    systemQuota: UInt32 = 32768,
    _ body: (IOASIDStore) async throws -> R
) async throws -> R {
    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    let store = try IOASIDStore(path: dir.child("store"), options: testOptions(capacity: capacity, systemQuota: systemQuota))
    let result = try await body(store)
    try expectClean(store)
    return result
}

private func testOptions(capacity: UInt32, systemQuota: UInt32) -> IOASIDStore.Options {
    var options = IOASIDStore.Options()
    options.capacity = capacity
    options.systemQuota = systemQuota
    return options
}

/// Fails unless every invariant of the store holds.
package func expectClean(_ store: IOASIDStore) throws {
    let report = try store.verify()
    guard report.isClean else {
        throw SupportCheckFailed("the store breaks an invariant: \(report.violations.map { "[\($0.code)] \($0.message)" })")
    }
}

/// Expects `body`, run in a write transaction, to be refused with `code` and
/// to have changed nothing.
///
/// The refusal is caught *inside* the transaction, which is then committed,
/// and the store's records are compared before and after: an operation that
/// wrote before refusing fails this check (the store also rolls such a
/// transaction back and reports `internalError`, which fails it too).
package func expectRefusal<R>(
    _ code: IOASIDError.Code,
    in store: IOASIDStore,
    _ body: (borrowing WriteTransaction) throws -> R
) throws {
    let before = try store.rawDump()
    var outcome: Result<Void, IOASIDError>?
    let committed = Result { () throws(IOASIDError) in
        try IOASIDStoreMapping.write(store) { tx in
            do {
                _ = try body(tx)
                outcome = .success(())
            } catch let error as IOASIDError {
                outcome = .failure(error)
            }
        }
    }
    let after = try store.rawDump()
    var problems: [String] = []
    switch outcome {
    case .success: problems.append("expected \(code), but it succeeded")
    case .failure(let error) where error.code != code: problems.append("expected \(code), got \(error)")
    case .failure, .none: break
    }
    if case .failure(let error) = committed { problems.append("the transaction did not commit after the refusal: \(error)") }
    if before != after { problems.append("the refused operation changed the store") }
    guard problems.isEmpty else { throw SupportCheckFailed(problems.joined(separator: "; ")) }
}

/// Expects a store-level call (one that runs its own transactions, such as an
/// import) to be refused with `code` and to leave every record as it was.
package func expectStoreRefusal<R>(
    _ code: IOASIDError.Code,
    in store: IOASIDStore,
    _ body: () throws -> R
) throws {
    let before = try store.rawDump()
    var problem: String?
    do {
        _ = try body()
        problem = "expected \(code), but it succeeded"
    } catch let error as IOASIDError where error.code == code {
    } catch {
        problem = "expected \(code), got \(error)"
    }
    if try store.rawDump() != before { problem = (problem.map { $0 + "; " } ?? "") + "the refused call changed the store" }
    if let problem { throw SupportCheckFailed(problem) }
}

/// Maps the untyped throws of `write` to ``IOASIDError`` for the helpers above.
private enum IOASIDStoreMapping {
    static func write(_ store: IOASIDStore, _ body: (borrowing WriteTransaction) throws -> Void) throws(IOASIDError) {
        do { try store.write(body) } catch let error as IOASIDError { throw error } catch {
            throw IOASIDError(.storageFailure, "\(error)")
        }
    }
}

/// Writes the export of `set` to `NAME` in `dir`; returns its path and bytes.
package func exportToFile(
    _ store: IOASIDStore, _ set: SetID, in dir: TemporaryDirectory, name: String = "export.jsonl"
) throws -> (String, Data) {
    var data = Data()
    _ = try store.exportSet(set, to: { data.append(contentsOf: $0) })
    let path = dir.child(name)
    try data.write(to: URL(fileURLWithPath: path))
    return (path, data)
}

/// The directory of the committed fixtures (`Tests/IOASIDStoreTests/Fixtures`).
package let fixturesDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Tests/IOASIDStoreTests/Fixtures").path

/// Loads `Fixtures/NAME.mdb_dump` into a new store directory with `mdb_load`
/// (Debian's lmdb-utils, installed by `Tools/test`) and returns its path.
package func loadFixtureFiles(_ name: String, into dir: TemporaryDirectory) throws -> String {
    let path = dir.child("store")
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
    let load = Process()
    load.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    load.arguments = ["mdb_load", "-f", fixturesDirectory + "/\(name).mdb_dump", path]
    try load.run()
    load.waitUntilExit()
    guard load.terminationStatus == 0 else {
        throw SupportCheckFailed("mdb_load (Debian's lmdb-utils, installed by Tools/test) failed with status \(load.terminationStatus)")
    }
    for file in ["data.mdb", "lock.mdb"] { _ = chmod(path + "/" + file, 0o600) }
    return path
}

/// Loads a fixture with ``loadFixtureFiles(_:into:)`` and opens it (upgrading it).
package func loadFixture(_ name: String, into dir: TemporaryDirectory) throws -> IOASIDStore {
    var options = IOASIDStore.Options()
    options.creation = .openExisting
    return try IOASIDStore(path: try loadFixtureFiles(name, into: dir), options: options)
}

/// A fault that fires once or until disarmed, for fault-injection hooks.
package final class FaultSwitch: Sendable {
    private let live = Locked(true)

    package init() {}

    /// Whether to fail this call; with `once`, disarms after the first failure.
    package func fire(once: Bool) -> Bool {
        live.withLock { live in
            guard live else { return false }
            if once { live = false }
            return true
        }
    }

    /// Stops failing.
    package func disarm() { live.withLock { $0 = false } }
}
