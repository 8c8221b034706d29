/// Owner tokens, subscriber names and holder names are *names*: text that is
/// printed to terminals and logs, so it must be plain.
///
/// A name is valid UTF-8 (every Swift `String` is), 1 to 256 bytes long, and
/// has no control characters: none of C0 (U+0000–U+001F), DEL (U+007F) or C1
/// (U+0080–U+009F), no line or paragraph separator (U+2028, U+2029) and no
/// bidirectional control (U+061C, U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069), which would make a name shown on a terminal read as
/// another. The same rule applies to names given to the library and on the
/// command line. A name that may have been made before the separators and
/// bidirectional controls were refused — a token in an import header, a
/// subscriber named to follow — is checked for control characters only
/// (`existing: true`); everything prints all of them escaped.
public enum Names {
    /// The longest name, in UTF-8 bytes.
    public static let maximumLength = 256

    /// Throws ``IOASIDError/Code-swift.struct/invalidArgument`` unless `name` is a valid name.
    ///
    /// - Parameters:
    ///   - name: the name to check.
    ///   - kind: what the name is, for the message (`token`, `subscriber name`, …).
    ///   - existing: whether the name may have been made before separators and bidirectional
    ///     controls were refused (then only control characters are).
    public static func check(_ name: String, as kind: String, existing: Bool = false) throws(IOASIDError) {
        let length = name.utf8.count
        guard length >= 1, length <= maximumLength else {
            throw IOASIDError(.invalidArgument, "a \(kind) must be 1 to \(maximumLength) bytes long, got \(length)")
        }
        if let bad = name.unicodeScalars.first(where: { isControl($0) || (!existing && isMisleading($0)) }) {
            throw IOASIDError(
                .invalidArgument,
                "a \(kind) must not contain control characters; \"\(escaped(name))\" contains U+\(String(bad.value, radix: 16, uppercase: true).leftPadded(to: 4))"
            )
        }
    }

    /// `text` with every control character shown as an escape (`\u{1B}`, `\n`, …),
    /// so that printing it cannot move the cursor, ring the bell or rewrite a terminal.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0) || isMisleading($0) }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isControl(scalar) || isMisleading(scalar): out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// C0, DEL and C1.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value <= 0x9F)
    }

    /// Characters that make text shown read as other text.
    static func isMisleading(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x2028, 0x2029: true  // line and paragraph separators: a line break to some readers
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidirectional controls: reorder what is shown
        default: false
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
