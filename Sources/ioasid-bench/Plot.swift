// The group-commit plot: the store's durable allocate+free throughput against the number
// of concurrent callers, with raw C LMDB's N puts per durable commit as the ceiling.

import Foundation

func throughputSVG(_ points: [GroupPoint]) -> String {
    let width = 680.0, height = 420.0, left = 70.0, bottom = 50.0, top = 50.0, right = 20.0
    // Log scales on both axes: the ceiling grows about linearly in N, and both lines stay readable.
    let values = points.flatMap { [$0.store, $0.storeOnWriter, $0.raw] }.filter { $0 > 0 }
    let minRate = pow(10, floor(log10((values.min() ?? 1) / 2)))
    let maxRate = (values.max() ?? 10) * 1.6
    let maxCallers = Double(points.map(\.callers).max() ?? 64)
    func x(_ callers: Int) -> Double { left + 30 + log2(Double(callers)) / log2(maxCallers) * (width - left - right - 60) }
    func y(_ rate: Double) -> Double {
        height - bottom - (log10(max(rate, minRate)) - log10(minRate)) / (log10(maxRate) - log10(minRate)) * (height - bottom - top)
    }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    svg += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">Durable allocate+free with group commit vs raw C LMDB</text>\n"
    svg += "<text x=\"\(f(width / 2))\" y=\"36\" text-anchor=\"middle\" fill=\"#555\">a group of N callers can share at most N operations per commit</text>\n"
    svg += "<line x1=\"\(f(left))\" y1=\"\(f(height - bottom))\" x2=\"\(f(width - right))\" y2=\"\(f(height - bottom))\" stroke=\"black\"/>\n"
    svg += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(height - bottom))\" stroke=\"black\"/>\n"
    var ticks: [Double] = []
    var decade = minRate
    while decade <= maxRate {
        ticks += [decade, 2 * decade, 5 * decade].filter { $0 <= maxRate }
        decade *= 10
    }
    for r in ticks {
        svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y(r) + 4))\" text-anchor=\"end\">\(r >= 1000 ? String(format: "%.0fk", r / 1000) : String(format: "%.0f", r))</text>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(y(r)))\" x2=\"\(f(width - right))\" y2=\"\(f(y(r)))\" stroke=\"#ddd\"/>\n"
    }
    for callers in points.map(\.callers) {
        svg += "<text x=\"\(f(x(callers)))\" y=\"\(f(height - bottom + 18))\" text-anchor=\"middle\">\(callers)</text>\n"
    }
    svg += "<text x=\"\(f(width / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">concurrent callers N (log scale)</text>\n"
    svg += "<text x=\"16\" y=\"\(f(height / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(f(height / 2)))\">operations per second (log scale)</text>\n"
    func series(_ values: [(Int, Double)], color: String, dashed: Bool, label: (Double, Double) -> [String], other: [Int: Double],
                beside: Bool = false) {
        let line = values.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
        svg += "<polyline points=\"\(line)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2.5\"\(dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
        for (callers, value) in values {
            svg += "<circle cx=\"\(f(x(callers)))\" cy=\"\(f(y(value)))\" r=\"4\" fill=\"\(color)\"/>\n"
            // Labels go on the side away from the other line.
            let above = value > (other[callers] ?? 0) || (value == other[callers] && dashed)
            let lines = label(Double(callers), value)
            if beside {
                // To the right of the point, clear of the lines above and below it.
                for (i, line) in lines.enumerated() {
                    svg += "<text x=\"\(f(x(callers) + 8))\" y=\"\(f(y(value) + 4 + Double(i) * 14))\" fill=\"\(color)\">\(line)</text>\n"
                }
                continue
            }
            for (i, line) in lines.enumerated() {
                let dy = above ? -9 - Double(lines.count - 1 - i) * 14 : 18 + Double(i) * 14
                svg += "<text x=\"\(f(x(callers)))\" y=\"\(f(y(value) + dy))\" text-anchor=\"middle\" fill=\"\(color)\">\(line)</text>\n"
            }
        }
    }
    let perCommit = Dictionary(uniqueKeysWithValues: points.map { ($0.callers, $0.opsPerCommit) })
    let storeRates = Dictionary(uniqueKeysWithValues: points.map { ($0.callers, $0.store) })
    let rawRates = Dictionary(uniqueKeysWithValues: points.map { ($0.callers, $0.raw) })
    series(points.map { ($0.callers, $0.raw) }, color: "#c0392b", dashed: true, label: { _, v in [rate(v)] }, other: storeRates)
    series(points.map { ($0.callers, $0.store) }, color: "#2c7be5", dashed: false,
           label: { n, v in [rate(v), String(format: "%.1f ops/commit", perCommit[Int(n)] ?? 0)] }, other: rawRates)
    series(points.map { ($0.callers, $0.storeOnWriter) }, color: "#27ae60", dashed: false,
           label: { _, v in [rate(v)] }, other: storeRates, beside: true)
    // Legend.
    svg += "<line x1=\"\(f(left + 12))\" y1=\"\(f(top + 8))\" x2=\"\(f(left + 40))\" y2=\"\(f(top + 8))\" stroke=\"#c0392b\" stroke-width=\"2.5\" stroke-dasharray=\"6 4\"/>\n"
    svg += "<text x=\"\(f(left + 46))\" y=\"\(f(top + 12))\" fill=\"#c0392b\">raw C LMDB: N mdb_put per durable commit (ceiling)</text>\n"
    svg += "<line x1=\"\(f(left + 12))\" y1=\"\(f(top + 26))\" x2=\"\(f(left + 40))\" y2=\"\(f(top + 26))\" stroke=\"#2c7be5\" stroke-width=\"2.5\"/>\n"
    svg += "<text x=\"\(f(left + 46))\" y=\"\(f(top + 30))\" fill=\"#2c7be5\">store: N async callers, allocate+free (operations per commit measured)</text>\n"
    svg += "<line x1=\"\(f(left + 12))\" y1=\"\(f(top + 44))\" x2=\"\(f(left + 40))\" y2=\"\(f(top + 44))\" stroke=\"#27ae60\" stroke-width=\"2.5\"/>\n"
    svg += "<text x=\"\(f(left + 46))\" y=\"\(f(top + 48))\" fill=\"#27ae60\">store: the same callers on the store's writer executor</text>\n"
    svg += "</svg>\n"
    return svg
}
