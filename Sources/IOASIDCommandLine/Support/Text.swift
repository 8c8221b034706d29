#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few string and path helpers the tool needs, written on the C library
/// and the standard library: their Foundation counterparts (`String(format:)`,
/// `trimmingCharacters(in:)`, `NSString`'s path methods) live outside
/// FoundationEssentials and would link all of swift-corelibs-foundation and
/// ICU into the tool — about 36,000 more relocations and a millisecond or two
/// at the start of every `ioasid` process.
package enum Text {
    /// `value` with `places` digits after the point, rounded as `printf("%.Nf")` rounds.
    package static func fixed(_ value: Double, places: Int) -> String {
        let format = "%.\(max(0, min(places, 17)))f"
        var buffer = [CChar](repeating: 0, count: 64)
        let count = withVaList([value]) { arguments in
            buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, format, arguments) }
        }
        guard count >= 0, count < buffer.count else { return "\(value)" }
        return String(decoding: buffer.prefix(Int(count)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `text` without the spaces and tabs (any blank that is not a line break) at either end.
    package static func trimmingBlanks<S: StringProtocol>(_ text: S) -> String {
        func blank(_ character: Character) -> Bool { character.isWhitespace && !character.isNewline }
        guard let first = text.firstIndex(where: { !blank($0) }), let last = text.lastIndex(where: { !blank($0) }) else { return "" }
        return String(text[first...last])
    }

    /// `$TMPDIR` when set, else `/tmp`, without a trailing slash.
    package static func temporaryDirectory() -> String {
        var directory = getenv("TMPDIR").map { String(cString: $0) } ?? ""
        while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
        return directory.isEmpty ? "/tmp" : directory
    }

    /// `path` with a leading `~` (the user's home) or `~name` (that user's home)
    /// expanded; unchanged when it has none or the user is unknown.
    package static func expandingTilde(_ path: String) -> String {
        guard path.hasPrefix("~") else { return path }
        let slash = path.firstIndex(of: "/") ?? path.endIndex
        let user = path[path.index(after: path.startIndex)..<slash]
        let home: String?
        if user.isEmpty {
            if let value = getenv("HOME"), value.pointee != 0 {
                home = String(cString: value)
            } else {
                home = getpwuid(getuid()).flatMap { $0.pointee.pw_dir }.map { String(cString: $0) }
            }
        } else {
            home = getpwnam(String(user)).flatMap { $0.pointee.pw_dir }.map { String(cString: $0) }
        }
        guard var home else { return path }
        while home.count > 1, home.hasSuffix("/") { home.removeLast() }
        return home + path[slash...]
    }

    /// The directory part of `path` (`/a/b` for `/a/b/c`, `/` for `/a`, `.` for `a`).
    package static func directory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }
}
