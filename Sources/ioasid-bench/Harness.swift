// Timing, statistics, formatting and the result tables.

import Foundation

/// Writes a line to standard output at once (unbuffered, so progress shows even in a pipe).
func say(_ line: String) {
    try? FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
}

/// Elapsed seconds of `body`.
func time(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    return seconds(ContinuousClock.now - start)
}

/// Elapsed seconds of an async `body`.
func timeAsync(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    return seconds(ContinuousClock.now - start)
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func median(_ xs: [Double]) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The `p` quantile (0…1) of `xs` (nearest rank).
func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s[min(s.count - 1, max(0, Int((Double(s.count) * p).rounded(.up)) - 1))]
}

func rate(_ x: Double) -> String {
    if x >= 1e6 { return String(format: "%.2fM/s", x / 1e6) }
    if x >= 1e3 { return String(format: "%.1fk/s", x / 1e3) }
    return String(format: "%.0f/s", x)
}

func micros(_ s: Double) -> String { String(format: "%.0f µs", s * 1e6) }
func millis(_ s: Double) -> String { String(format: "%.2f ms", s * 1e3) }
func secs(_ s: Double) -> String { s < 1 ? String(format: "%.3f s", s) : String(format: "%.2f s", s) }

/// A floor from the issue, checked on the ratio column.
struct Floor {
    /// As the issue states it.
    let text: String
    /// Whether the row's ratio meets the floor.
    let met: (Double) -> Bool

    init(text: String, met: @escaping (Double) -> Bool) {
        self.text = text
        self.met = met
    }

    /// An absolute floor on the store's own figure.
    init(text: String, storeFigure: Double, _ check: (Double) -> Bool) {
        self.text = text
        let ok = check(storeFigure)
        met = { _ in ok }
    }

    /// A rate floor: store rate / raw rate ≥ `x`.
    static func atLeast(_ x: Double) -> Floor {
        Floor(text: String(format: "store ≥ %.2g× raw", x)) { $0 >= x }
    }

    /// A time floor: store time ≤ `x` × raw time, checked as raw / store ≥ 1/x.
    static func timeAtMost(_ x: Double) -> Floor {
        Floor(text: String(format: "store ≤ %.2g× raw time", x)) { $0 >= 1 / x - 1e-12 }
    }
}

/// One row of table 1 (store vs raw C LMDB).
struct RawRow {
    let name: String
    let store: String
    let raw: String
    let rawWhat: String
    /// Oriented so that > 1 favours the store: store/raw for rates, raw/store for times.
    let ratio: Double
    let floor: Floor?
}

/// One row of table 2 (store vs itself).
struct SelfRow {
    let name: String
    let a: String
    let b: String
    let ratioText: String
}

/// One row of table 3 (store alone, or a figure with no baseline).
struct PlainRow {
    let name: String
    let value: String
    let note: String
}

/// Collects the rows as they are measured and prints them as they come.
@MainActor final class Report {
    var raw: [RawRow] = []
    var mine: [SelfRow] = []
    var plain: [PlainRow] = []
    var notes: [String] = []

    /// A rate row: more is better for both; ratio store / raw.
    func rates(_ name: String, store: Double, raw: Double, rawWhat: String, floor: Floor? = nil) {
        add(RawRow(name: name, store: rate(store), raw: rate(raw), rawWhat: rawWhat, ratio: store / raw, floor: floor))
    }

    /// A time row: less is better for both; ratio raw / store (so > 1 still favours the store).
    func times(_ name: String, store: Double, raw: Double, rawWhat: String, floor: Floor? = nil, format: (Double) -> String = secs) {
        add(RawRow(name: name, store: format(store), raw: format(raw), rawWhat: rawWhat, ratio: raw / store, floor: floor))
    }

    /// A row whose figures are not rates or times (operations per commit); ratio store / raw.
    func counts(_ name: String, store: Double, raw: Double, rawWhat: String, floor: Floor? = nil) {
        add(RawRow(name: name, store: String(format: "%.1f", store), raw: String(format: "%.0f", raw), rawWhat: rawWhat,
                   ratio: store / raw, floor: floor))
    }

    private func add(_ row: RawRow) {
        raw.append(row)
        let verdict = row.floor.map { $0.met(row.ratio) ? "meets" : "misses" } ?? ""
        say(String(format: "  %-52@ store %11@  raw %11@  %6.3f×  %@", row.name as NSString, row.store as NSString,
                     row.raw as NSString, row.ratio, verdict as NSString))
    }

    /// A store-vs-itself row: `a` against `b`, with the quotient a / b.
    func compare(_ name: String, a: String, b: String, quotient: Double) {
        mine.append(SelfRow(name: name, a: a, b: b, ratioText: String(format: "%.2f×", quotient)))
        say(String(format: "  %-52@ %11@  vs %11@  %6.2f×", name as NSString, a as NSString, b as NSString, quotient))
    }

    func figure(_ name: String, _ value: String, note: String = "") {
        plain.append(PlainRow(name: name, value: value, note: note))
        say("  \(name): \(value) \(note)")
    }

    func note(_ text: String) {
        notes.append(text)
        say("  note: \(text)")
    }

    var markdown: String {
        var out = ""
        if !raw.isEmpty {
            out += "### Table 1: store vs raw C LMDB\n\n"
            out += "Ratio = store / raw for rates and counts, raw time / store time for times and latencies: "
            out += "**above 1 favours the store** in every row. Floors are the issue's, stated on the store's figure.\n\n"
            out += "| benchmark | store | raw C LMDB | raw C LMDB does | store / raw (>1 favours store) | floor | |\n"
            out += "|---|---:|---:|---|---:|---|---|\n"
            for r in raw {
                let verdict = r.floor.map { $0.met(r.ratio) ? "meets" : "**misses**" } ?? ""
                // Three decimals where a floor is checked, so a ratio just under it does not print as equal to it.
                let ratio = String(format: r.floor == nil ? "%.2f×" : "%.3f×", r.ratio)
                out += "| \(r.name) | \(r.store) | \(r.raw) | \(r.rawWhat) | \(ratio) | \(r.floor?.text ?? "") | \(verdict) |\n"
            }
            out += "\n"
        }
        if !mine.isEmpty {
            out += "### Table 2: store vs itself\n\n"
            out += "| comparison (A vs B) | A | B | A / B |\n|---|---:|---:|---:|\n"
            for r in mine { out += "| \(r.name) | \(r.a) | \(r.b) | \(r.ratioText) |\n" }
            out += "\n"
        }
        if !plain.isEmpty {
            out += "### Table 3: store figures without a baseline\n\n| measurement | value | |\n|---|---:|---|\n"
            for r in plain { out += "| \(r.name) | \(r.value) | \(r.note) |\n" }
            out += "\n"
        }
        if !notes.isEmpty {
            out += notes.map { "- \($0)" }.joined(separator: "\n") + "\n"
        }
        return out
    }
}
