import Foundation
import IOASIDStore
import Testing

/// A fresh directory under the system temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("ioasid-test-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }

    func child(_ name: String) -> String { path + "/" + name }
}

/// Runs `body` against a new real store in a temporary directory.
func withStore<R>(
    capacity: UInt32 = 1 << 20,
    systemQuota: UInt32 = 32768,
    _ body: (IOASIDStore) throws -> R
) throws -> R {
    let dir = TemporaryDirectory()
    defer { dir.cleanup() }
    var options = IOASIDStore.Options()
    options.capacity = capacity
    options.systemQuota = systemQuota
    let store = try IOASIDStore(path: dir.child("store"), options: options)
    let result = try body(store)
    let report = try store.verify()
    #expect(report.isClean, "the store breaks an invariant after the test: \(report.violations)")
    return result
}

/// Expects `body` to throw an ``IOASIDError`` with `code`.
func expectError<R>(
    _ code: IOASIDError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> R
) {
    do {
        _ = try body()
        Issue.record("expected \(code), but it succeeded", sourceLocation: sourceLocation)
    } catch let error as IOASIDError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Expects a refusal with `code` that leaves every record of the store unchanged.
func expectRefusal<R>(
    _ code: IOASIDError.Code,
    in store: IOASIDStore,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> R
) throws {
    let before = try store.rawDump()
    expectError(code, sourceLocation: sourceLocation, body)
    let after = try store.rawDump()
    #expect(before == after, "a refused operation changed the store", sourceLocation: sourceLocation)
}
