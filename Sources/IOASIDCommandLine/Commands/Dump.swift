import ArgumentParser
import IOASIDMigrations
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid dump [--raw]`: every record, decoded, for support.
    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump",
            abstract: "Print every record of the store, decoded (for support and diagnosis).",
            discussion: """
                One line per record, database by database in key order, from one consistent snapshot, \
                opened read-only. A record that fails its checksum or does not decode is printed with \
                the problem and its raw bytes instead of stopping the dump. With --json the dump is a \
                JSON Lines stream: one object per record. Names and tokens are escaped; private data is \
                printed in hex.

                EXAMPLES:
                  ioasid dump > ioasid-dump.txt
                  ioasid --json dump | jq -c 'select(.database == "ids")'
                """
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print every record's raw key and value in hex too.")
        var raw = false

        struct RecordView: Encodable {
            let database: String
            let key: String
            let fields: [String: FieldValue]?
            let problem: String?
            let rawKey: String?
            let rawValue: String?
        }

        enum FieldValue: Encodable {
            case number(UInt64), text(String), flag(Bool), numbers([UInt64])

            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .number(let n): try container.encode(n)
                case .text(let t): try container.encode(t)
                case .flag(let b): try container.encode(b)
                case .numbers(let list): try container.encode(list)
                }
            }

            init(_ value: DumpRecord.Value) {
                switch value {
                case .number(let n): self = .number(n)
                case .text(let t): self = .text(t)
                case .flag(let b): self = .flag(b)
                case .bytes(let bytes): self = .text(Hex.encode(bytes))
                case .numbers(let list): self = .numbers(list)
                case .time(let ms): self = .text(Timestamp.rfc3339(milliseconds: ms))
                }
            }

            var text: String {
                switch self {
                case .number(let n): "\(n)"
                case .text(let t): t.isEmpty ? "-" : Names.escaped(t)
                case .flag(let b): b ? "yes" : "no"
                case .numbers(let list): list.map(String.init).joined(separator: ",")
                }
            }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStoreForReading()
                var records = 0
                var damaged = 0
                try store.dump { (record: DumpRecord) throws(IOASIDError) in
                    records += 1
                    if record.problem != nil { damaged += 1 }
                    let showRaw = raw || record.problem != nil
                    if global.json {
                        var fields: [String: FieldValue] = [:]
                        for field in record.fields where field.value != .text("") { fields[field.name] = FieldValue(field.value) }
                        let view = RecordView(
                            database: record.database, key: record.key, fields: fields.isEmpty ? nil : fields, problem: record.problem,
                            rawKey: showRaw ? Hex.encode(record.rawKey) : nil, rawValue: showRaw && !record.rawValue.isEmpty ? Hex.encode(record.rawValue) : nil
                        )
                        try Output.standardOutput(Output.encode(view))
                    } else {
                        var line = "\(record.database) \(record.key)"
                        let fields = record.fields.map { "\($0.name)=\(FieldValue($0.value).text)" }
                        if !fields.isEmpty { line += ": " + fields.joined(separator: " ") }
                        if let problem = record.problem { line += ": DAMAGED (\(problem))" }
                        if showRaw { line += " [key \(Hex.encode(record.rawKey)) value \(Hex.encode(record.rawValue))]" }
                        try Output.standardOutput(line)
                    }
                }
                global.logger.debug("dumped \(plural(records, "record")), \(damaged) damaged")
            }
        }
    }
}
