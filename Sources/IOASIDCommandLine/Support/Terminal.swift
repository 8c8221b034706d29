import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the terminal on standard error (where progress and bars go) can show.
enum Terminal {
    /// Whether `descriptor` is a terminal.
    static func isTerminal(_ descriptor: Int32) -> Bool {
        if let terminal = CommandSession.current?.terminal {
            return descriptor == STDOUT_FILENO ? terminal.standardOutput : descriptor == STDERR_FILENO ? terminal.standardError : false
        }
        return isatty(descriptor) != 0
    }

    /// Whether standard output is a terminal (usage bars in `status`).
    static var standardOutputIsTerminal: Bool { isTerminal(STDOUT_FILENO) }

    /// Plain ASCII only, no cursor control beyond `\r`: `TERM=dumb` (or unset) or `NO_COLOR` set.
    static var asciiOnly: Bool {
        if let terminal = CommandSession.current?.terminal { return terminal.asciiOnly }
        if EnvironmentVariables.value("NO_COLOR") != nil { return true }
        guard let term = EnvironmentVariables.nonEmpty("TERM") else { return true }
        return term == "dumb"
    }

    /// The width of the terminal on `descriptor` in columns: the kernel's
    /// window size, else `$COLUMNS`, else 80.
    static func width(of descriptor: Int32) -> Int {
        if let terminal = CommandSession.current?.terminal { return terminal.width }
        var size = winsize()
        if ioctl(descriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let columns = EnvironmentVariables.value("COLUMNS").flatMap(Int.init), columns > 0 { return columns }
        return 80
    }
}

/// A usage bar such as `[####......]` (`[████····]` on a capable terminal), `width` cells inside.
func bar(_ used: UInt64, of total: UInt64, width: Int, ascii: Bool) -> String {
    let cells = max(1, width)
    let filled = total == 0 ? 0 : min(cells, Int((Double(used) / Double(total) * Double(cells)).rounded(.up)))
    let (full, empty) = ascii ? ("#", ".") : ("█", "·")
    return "[" + String(repeating: full, count: filled) + String(repeating: empty, count: cells - filled) + "]"
}
