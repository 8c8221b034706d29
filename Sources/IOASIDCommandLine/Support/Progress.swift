import Foundation
import LMDB

#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long operation on standard error: only when standard error
/// is a terminal and `--json` is off, redrawn in place at most ten times a
/// second, fitted to the terminal's width, ASCII with `TERM=dumb` or
/// `NO_COLOR`, and erased when the operation ends.
///
/// Determinate operations report (done, total); the others (a backup, a
/// free-set) show what they do and the time spent, or a measured amount.
final class Progress: Sendable {
    private struct State {
        var label: String
        var done = 0
        var total = 0
        var determinate = false
        var lastDraw: ContinuousClock.Instant?
        var drawn = false
        var finished = false
    }

    private let enabled: Bool
    private let ascii: Bool
    private let unit: String
    private let started = ContinuousClock.now
    private let state: Locked<State>
    /// For operations without callbacks: (done, total) measured from outside, if known.
    private let measure: (@Sendable () -> (done: Int, total: Int)?)?

    init(_ global: GlobalOptions, _ label: String, unit: String = "IDs", measure: (@Sendable () -> (done: Int, total: Int)?)? = nil) {
        enabled = !global.json && Terminal.isTerminal(STDERR_FILENO)
        ascii = Terminal.asciiOnly
        self.unit = unit
        self.measure = measure
        state = Locked(State(label: label))
    }

    /// A (done, total) callback for the library.
    var update: (Int, Int) -> Void { { [self] done, total in report(done, total) } }

    /// Records progress; redraws when the last drawing is 100 ms old.
    func report(_ done: Int, _ total: Int) {
        guard enabled else { return }
        let line: String? = state.withLock { s in
            s.done = done
            s.total = total
            s.determinate = true
            let now = ContinuousClock.now
            if let last = s.lastDraw, now - last < .milliseconds(100), done < total { return nil }
            s.lastDraw = now
            s.drawn = true
            return render(s)
        }
        if let line { draw(line) }
    }

    /// Starts a new phase (`validating` then `importing`): the bar starts again under its own name.
    func phase(_ label: String) {
        guard enabled else { return }
        state.withLock { s in
            s.label = label
            s.done = 0
            s.lastDraw = nil
        }
    }

    /// Runs `body` while a ticker redraws the line (elapsed time, or what
    /// `measure` reports) every 100 ms after the first 200 ms.
    func whileRunning<R>(_ body: () throws -> R) rethrows -> R {
        guard enabled else { return try body() }
        // Without a thread to spare, the work runs without a ticker.
        try? BackgroundThread.start(name: "ioasid-progress") { [self] in
            var first = true
            while true {
                usleep(first ? 200_000 : 100_000)
                first = false
                let line: String? = state.withLock { s in
                    guard !s.finished else { return nil }
                    if let measured = measure?() {
                        s.done = measured.done
                        s.total = measured.total
                        s.determinate = true
                    }
                    s.drawn = true
                    s.lastDraw = .now
                    return render(s)
                }
                guard let line else { return }
                draw(line)
            }
        }
        defer { finish() }
        return try body()
    }

    /// Erases the line (if anything was drawn) and stops the ticker.
    func finish() {
        guard enabled else { return }
        let erase: Bool = state.withLock { s in
            defer { s.finished = true }
            return s.drawn && !s.finished
        }
        if erase {
            Output.standardError(ascii ? "\r" + String(repeating: " ", count: max(0, width - 1)) + "\r" : "\r\u{1B}[K")
        }
    }

    private var width: Int { Terminal.width(of: STDERR_FILENO) }

    /// One line no wider than the terminal: label, bar, counts, percent, time.
    private func render(_ s: State) -> String {
        let columns = max(20, width) - 1
        let seconds = Double((ContinuousClock.now - started).components.seconds)
            + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
        let time = Text.fixed(seconds, places: 1) + " s"
        guard s.determinate else {
            let spinner = ascii ? ["|", "/", "-", "\\"] : ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
            let frame = spinner[Int(seconds * 10) % spinner.count]
            return fit("\(frame) \(s.label)  \(time)", columns)
        }
        let percent = s.total == 0 ? 100 : min(100, s.done * 100 / max(1, s.total))
        let counts = "\(grouped(s.done))/\(grouped(s.total))\(unit.isEmpty ? "" : " " + unit)  \(percent)%  \(time)"
        let room = columns - s.label.count - counts.count - 4
        guard room >= 10 else { return fit("\(s.label) \(counts)", columns) }
        let cells = min(room - 2, 50)
        return "\(s.label) \(bar(UInt64(max(0, s.done)), of: UInt64(max(0, s.total)), width: cells, ascii: ascii)) \(counts)"
    }

    private func fit(_ line: String, _ columns: Int) -> String {
        line.count <= columns ? line : String(line.prefix(columns))
    }

    private func draw(_ line: String) {
        if ascii {
            let padding = max(0, width - 1 - line.count)
            Output.standardError("\r" + line + String(repeating: " ", count: padding))
        } else {
            Output.standardError("\r" + line + "\u{1B}[K")
        }
    }
}

/// `1234567` as `1,234,567`.
func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (index, character) in digits.enumerated() {
        if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
        out.append(character)
    }
    return value < 0 ? "-" + out : out
}
