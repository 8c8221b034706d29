import IOASIDStore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The table of sets that `set list` and `status` print: a header, one row
/// per set (frozen and destroy-pending ones included, flagged), tokens escaped
/// and a usage bar fitted to the terminal when standard output is one.
enum SetTable {
    static func render(_ sets: [SetInfo], indent: String = "") -> [String] {
        let views = sets.map(SetView.init)
        let tokens = views.map { Names.escaped($0.token) }
        let tokenWidth = min(40, max(5, tokens.map(\.count).max() ?? 0))
        let numbers = views.map { ("\($0.allocated)", "\($0.freePending)", "\($0.quota)") }
        let allocatedWidth = max(9, numbers.map(\.0.count).max() ?? 0)
        let pendingWidth = max(12, numbers.map(\.1.count).max() ?? 0)
        let quotaWidth = max(5, numbers.map(\.2.count).max() ?? 0)
        let setWidth = max(3, views.map { "\($0.set)".count }.max() ?? 0)
        let flagsWidth = max(5, views.map { $0.flags.joined(separator: ",").count }.max() ?? 0)
        let bars = Terminal.standardOutputIsTerminal
        let fixed = indent.count + setWidth + tokenWidth + allocatedWidth + pendingWidth + quotaWidth + flagsWidth + 12
        let barWidth = bars ? min(30, Terminal.width(of: STDOUT_FILENO) - fixed - 3) : 0
        var lines = [
            indent + "SET".leftPadded(setWidth) + "  " + "TOKEN".padded(tokenWidth) + "  " + "ALLOCATED".leftPadded(allocatedWidth)
                + "  " + "FREE-PENDING".leftPadded(pendingWidth) + "  " + "QUOTA".leftPadded(quotaWidth) + "  " + "FLAGS".padded(flagsWidth)
                + (barWidth >= 5 ? "  USE" : ""),
        ]
        for (index, view) in views.enumerated() {
            var token = tokens[index]
            if token.count > tokenWidth { token = String(token.prefix(tokenWidth - 1)) + "…" }
            let flags = view.flags.isEmpty ? "-" : view.flags.joined(separator: ",")
            var line = indent + "\(view.set)".leftPadded(setWidth) + "  " + token.padded(tokenWidth) + "  "
                + numbers[index].0.leftPadded(allocatedWidth) + "  " + numbers[index].1.leftPadded(pendingWidth) + "  "
                + numbers[index].2.leftPadded(quotaWidth) + "  " + flags.padded(flagsWidth)
            if barWidth >= 5 {
                line += "  " + bar(UInt64(view.allocated + view.freePending), of: UInt64(view.quota), width: barWidth, ascii: Terminal.asciiOnly)
            }
            lines.append(line)
        }
        return lines.map { $0.trimmingTrailingSpaces() }
    }
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
    func trimmingTrailingSpaces() -> String {
        var copy = self
        while copy.last == " " { copy.removeLast() }
        return copy
    }
}
