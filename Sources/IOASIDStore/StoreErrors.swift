import IOASIDMigrations
import LMDB

extension IOASIDError {
    /// Maps any error thrown inside the store to an ``IOASIDError``; with the
    /// store's `path`, damage reports name the file.
    static func wrapping(_ error: any Error, at path: String? = nil) -> IOASIDError {
        let file = path.map { $0 + "/data.mdb" } ?? "the store's data file"
        switch error {
        case let error as IOASIDError:
            return error.locating(in: path)
        case let error as LMDBError:
            if error == .fault {
                return IOASIDError(.corruptStore, "\(file) is damaged: reading it hit a bad page (LMDB faulted or failed its own check)", cause: error)
            }
            if error.isStoreUnusable {
                return IOASIDError(.corruptStore, "\(file) is damaged: LMDB reports \(error.name)", cause: error)
            }
            if error.isDamageSymptom {
                // The store's own calls handle absence and never reuse a failed
                // transaction: these codes reach here only from a damaged tree.
                return IOASIDError(.corruptStore, "\(file) is damaged: LMDB reports \(error.name) (\(error.message)) while reading its B-trees", cause: error)
            }
            if error == .accessDenied {
                return IOASIDError(.accessDenied, "permission denied", cause: error)
            }
            if error == .mapFull {
                return IOASIDError(.storageFailure, "the store reached its maximum map size", cause: error)
            }
            if error == .noSpace {
                return IOASIDError(.storageFailure, "the disk is full", cause: error)
            }
            if error == .io, let path, let free = FileSystem.availableBytes(path), free < DiskFull.threshold {
                let full = DiskFull(availableBytes: free)
                return IOASIDError(.storageFailure, "the disk is full", cause: full)
            }
            return IOASIDError(.storageFailure, "\(file): \(error.message) (\(error.name))", cause: error)
        case let error as DamagedRecord:
            return IOASIDError(.corruptStore, "\(file) is damaged: \(error)", cause: error)
        case is ValueReader.Underflow, is DecodingFailure:
            return IOASIDError(.corruptStore, "\(file) is damaged: a record does not decode", cause: error)
        case let error as MigrationError:
            switch error {
            case .newerSchema(let store, let supported):
                return IOASIDError(
                    .newerSchema,
                    "the store has schema version \(store); this software supports up to \(supported)",
                    cause: error
                )
            case .corruptHistory(let detail):
                return IOASIDError(.corruptStore, "the migration history (database migrations) in \(file) is damaged: \(detail)", cause: error)
            }
        default:
            return IOASIDError(.storageFailure, "\(file): \(error)")
        }
    }

    /// A damage report names the file: a `corruptStore` error thrown by a rule
    /// that found the store inconsistent ("the reserved total is below …") gets
    /// the store's `data.mdb` added, unless it names it already.
    func locating(in path: String?) -> IOASIDError {
        guard code == .corruptStore, let path, !message.contains("data.mdb") else { return self }
        var located = self
        located.message += " (in \(path)/data.mdb)"
        return located
    }

    /// Runs `body`, mapping anything it throws with ``wrapping(_:at:)``.
    static func mapping<R>(at path: String? = nil, _ body: () throws -> R) throws(IOASIDError) -> R {
        do { return try body() } catch { throw wrapping(error, at: path) }
    }
}

/// An `EIO` from the store while its file system had (almost) no space left: the disk is
/// full. LMDB reports a short write — what a full file system gives first — as `EIO`, which
/// alone would read as a failing disk.
public struct DiskFull: Error, Sendable, CustomStringConvertible {
    /// The bytes the file system had free for this process when the error was seen.
    public let availableBytes: UInt64

    /// Below this many free bytes, an `EIO` from a write is taken for a full disk: a
    /// commit's short write leaves the file system with less than one write's worth.
    static let threshold: UInt64 = 4 << 20

    public var description: String {
        "EIO (LMDB's report of a short write) with \(availableBytes) bytes free on the file system"
    }
}
