import LMDB

/// What checking an export without importing it found (``ExportFormat/validate(from:maximumDataSize:progress:)``).
public struct ExportCheck: Sendable, Equatable {
    /// The export's header.
    public let header: ExportHeader
    /// How many ID lines it holds (equal to the header's count once it is valid).
    public let count: Int
    /// How many of them map a guest ID.
    public let guests: Int
    /// How many carry private data.
    public let withData: Int
}

extension ExportFormat {
    /// Checks an export read once from `source` — header, every line, order,
    /// guest IDs, data size, count and SHA-256 — without importing it or
    /// opening any store. Memory stays bounded: entries are counted, not kept.
    ///
    /// - Parameters:
    ///   - source: the export to read, once: a file, standard input or a stream.
    ///   - maximumDataSize: the largest private data accepted per ID (the
    ///     destination store's limit; default ``IOASIDStore/defaultMaximumDataSize``).
    ///   - progress: called now and then with (IDs checked, IDs in the header).
    /// - Throws: ``IOASIDError`` — `exportChecksumMismatch`, `exportTruncated`,
    ///   `exportUnsupported`, `exportMalformed`; `invalidArgument` when the input cannot be read.
    public static func validate(
        from source: ExportSource,
        maximumDataSize: Int = IOASIDStore.defaultMaximumDataSize,
        progress: ((Int, Int) -> Void)? = nil
    ) throws(IOASIDError) -> ExportCheck {
        switch source {
        case .standardInput:
            return try check(SystemFile.standardInput, named: "standard input", limit: maximumDataSize, progress: progress)
        case .file(let path):
            let opened: SystemFile
            do { opened = try SystemFile.openForReading(path) } catch {
                throw IOASIDError(.invalidArgument, "cannot open \(path): \(error.message)", cause: error)
            }
            return try check(opened, named: path, limit: maximumDataSize, progress: progress)
        }
    }

    private static func check(
        _ input: borrowing SystemFile, named name: String, limit: Int, progress: ((Int, Int) -> Void)?
    ) throws(IOASIDError) -> ExportCheck {
        var validator = ExportValidator(maximumDataSize: limit)
        let descriptor = input.descriptor
        var count = 0
        var guests = 0
        var withData = 0
        let header = try validator.run(
            read: { buffer, wanted throws(IOASIDError) in
                try SystemFile.read(descriptor: descriptor, into: &buffer, upTo: wanted, named: name)
            },
            entry: { entry in
                count += 1
                if entry.guest != nil { guests += 1 }
                if !entry.data.isEmpty { withData += 1 }
            },
            progress: progress
        )
        return ExportCheck(header: header, count: count, guests: guests, withData: withData)
    }
}
