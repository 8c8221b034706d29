import IOASIDMigrations
import LMDB

extension IOASIDError {
    /// Maps any error thrown inside the store to an ``IOASIDError``.
    static func wrapping(_ error: any Error) -> IOASIDError {
        switch error {
        case let error as IOASIDError:
            return error
        case let error as LMDBError:
            if error.isStoreUnusable {
                return IOASIDError(.corruptStore, "the store's files are damaged: \(error.message)", cause: error)
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
            return IOASIDError(.storageFailure, error.message, cause: error)
        case let error as MigrationError:
            switch error {
            case .newerSchema(let store, let supported):
                return IOASIDError(
                    .newerSchema,
                    "the store has schema version \(store); this software supports up to \(supported)",
                    cause: error
                )
            case .corruptHistory(let detail):
                return IOASIDError(.corruptStore, "migration history is damaged: \(detail)", cause: error)
            }
        default:
            return IOASIDError(.storageFailure, "\(error)")
        }
    }

    /// Runs `body`, mapping anything it throws with ``wrapping(_:)``.
    static func mapping<R>(_ body: () throws -> R) throws(IOASIDError) -> R {
        do { return try body() } catch { throw wrapping(error) }
    }
}
