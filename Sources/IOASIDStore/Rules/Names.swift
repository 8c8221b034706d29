/// Owner tokens, subscriber names and holder names are *names*: text that is
/// printed to terminals and logs, so it must be plain.
///
/// A name is valid UTF-8 (every Swift `String` is), 1 to 256 bytes long, and
/// has no control characters: none of C0 (U+0000–U+001F), DEL (U+007F) or C1
/// (U+0080–U+009F). The same rule applies to names given to the library, on
/// the command line and in import headers.
public enum Names {
    /// The longest name, in UTF-8 bytes.
    public static let maximumLength = 256

    /// Throws ``IOASIDError/Code-swift.struct/invalidArgument`` unless `name` is a valid name.
    ///
    /// - Parameters:
    ///   - name: the name to check.
    ///   - kind: what the name is, for the message (`token`, `subscriber name`, …).
    public static func check(_ name: String, as kind: String) throws(IOASIDError) {
        let length = name.utf8.count
        guard length >= 1, length <= maximumLength else {
            throw IOASIDError(.invalidArgument, "a \(kind) must be 1 to \(maximumLength) bytes long, got \(length)")
        }
        if let bad = name.unicodeScalars.first(where: isControl) {
            throw IOASIDError(
                .invalidArgument,
                "a \(kind) must not contain control characters; \"\(escaped(name))\" contains U+\(String(bad.value, radix: 16, uppercase: true).leftPadded(to: 4))"
            )
        }
    }

    /// `text` with every control character shown as an escape (`\u{1B}`, `\n`, …),
    /// so that printing it cannot move the cursor, ring the bell or rewrite a terminal.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isControl(scalar): out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value <= 0x9F)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
