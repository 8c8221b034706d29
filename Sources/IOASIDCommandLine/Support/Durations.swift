import ArgumentParser
import IOASIDStore

/// Durations on the command line: a number with a unit (`500ms`, `30s`, `5m`,
/// `2h`, `1d`); a bare number is seconds.
enum Durations {
    /// Parses a duration, or throws a usage error that says what is wrong.
    static func parse(_ text: String) throws -> Duration {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        var digits = Substring(text)
        var scale: Int64 = 1000
        for (suffix, milliseconds) in units where text.hasSuffix(suffix) {
            let candidate = text.dropLast(suffix.count)
            guard let last = candidate.last, last.isNumber else { continue }
            digits = candidate
            scale = milliseconds
            break
        }
        // The longest duration: whole milliseconds whose nanoseconds fit an Int64 (about 106,751 days).
        let most = Int64.max / 1_000_000
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ValidationError("'\(Names.escaped(text))' is not a duration: a positive whole number with a unit, ms, s, m, h or d (for example 30s)")
        }
        guard let value = Int64(digits), value <= most / scale else {
            throw ValidationError("'\(Names.escaped(text))' is too long a duration: at most \(most / scale)\(units.first { $0.1 == scale }?.0 ?? "s")")
        }
        guard value > 0 else {
            throw ValidationError("'\(Names.escaped(text))' is not a duration: it must be more than 0")
        }
        return .milliseconds(value * scale)
    }

    /// `1500 ms`, `30 s`, `5 min`: a duration in milliseconds for people.
    static func text(milliseconds: UInt64) -> String {
        if milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000) h" }
        if milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000) min" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
        return "\(milliseconds) ms"
    }

    /// Whole milliseconds of a duration.
    static func milliseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1000 + UInt64(max(0, attoseconds) / 1_000_000_000_000_000)
    }
}
