import Foundation

/// A check made by a test-support helper did not hold; thrown so that the
/// test (or tool) calling the helper fails with this message.
package struct SupportCheckFailed: Error, CustomStringConvertible {
    /// What did not hold.
    package let description: String

    package init(_ description: String) { self.description = description }
}

/// A fresh private directory (0700) under the system temporary directory, removed by `cleanup()`.
package struct TemporaryDirectory: Sendable {
    /// The directory's path.
    package let path: String

    package init() throws {
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("ioasid-test-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
            return String(cString: base)
        }
        guard let made else { throw SupportCheckFailed("mkdtemp failed: errno \(errno)") }
        path = made
    }

    /// Removes the directory and everything in it.
    package func cleanup() { try? FileManager.default.removeItem(atPath: path) }

    /// The path of `name` inside the directory.
    package func child(_ name: String) -> String { path + "/" + name }
}
