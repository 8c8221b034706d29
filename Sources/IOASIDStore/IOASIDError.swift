/// An error from the IOASID store: a stable code, a human message and, where
/// there is one, the underlying cause (modelled on swift-nio's `FileSystemError`).
///
/// Every refusal leaves the store exactly as it was.
public struct IOASIDError: Error, Sendable, CustomStringConvertible {
    /// Stable, machine-readable error codes. Their raw values appear in the CLI's `--json` output.
    public enum Code: String, Sendable, CaseIterable, Codable {
        // Refused by a rule.
        /// The set already holds as many IDs as its quota allows (kernel `-ENOSPC`).
        case quotaExceeded
        /// The requested quota or capacity change does not fit in unreserved capacity (kernel `-ENOSPC`).
        case capacityExhausted
        /// No ID in the requested range is free.
        case rangeExhausted
        /// A live set already has this owner token (kernel `-EEXIST`).
        case duplicateToken
        /// The ID belongs to a different set (kernel `-EACCES`).
        case wrongSet
        /// The new quota is below the number of IDs the set holds (kernel `-EINVAL`).
        case quotaBelowUsage
        /// The system set cannot be destroyed.
        case systemSetProtected
        /// The capacity cannot shrink: an allocated ID or reserved quota lies above the new limit.
        case capacityInUse
        /// A subscriber with this name exists.
        case duplicateSubscriber
        /// The ID is free-pending: it cannot be retained (kernel `-EBUSY`).
        case idFreePending
        /// The set already maps this guest ID to another host ID (kernel `-EINVAL`).
        case duplicateGuest
        /// The ID already has a guest ID attached.
        case guestAlreadyAttached
        /// The set is frozen for migration: allocation, free, attach and detach are refused.
        case setFrozen
        /// The set is not frozen, so there is no migration to complete or abort.
        case setNotFrozen
        /// The export's checksum does not match its contents.
        case exportChecksumMismatch
        /// The export ends before its trailer.
        case exportTruncated
        /// The export's format or version is not one this software reads.
        case exportUnsupported
        /// A line of the export is malformed or breaks the format's rules.
        case exportMalformed
        /// This export has already been imported into this store.
        case exportAlreadyImported
        /// An imported ID could not be placed (no free ID left).
        case cannotPlace
        /// The store already holds data and cannot be initialised again.
        case alreadyInitialized
        /// An argument is out of its valid range (quota 0, an empty range, ID 0, …).
        case invalidArgument
        // Not found.
        /// No live set has this ID.
        case noSuchSet
        /// No allocated ID has this number.
        case noSuchID
        /// The set has no such guest ID, or the ID has no guest ID attached.
        case noSuchGuest
        /// No subscriber has this name.
        case noSuchSubscriber
        /// The holder does not hold this ID.
        case noSuchHold
        // Store unusable.
        /// There is no initialised store at the path.
        case notInitialized
        /// The store was written by a newer version of this software.
        case newerSchema
        /// The store's records break its invariants or cannot be decoded.
        case corruptStore
        /// The store's files cannot be used (permissions, another owner).
        case accessDenied
        /// LMDB or the operating system failed (full disk or map, I/O error, …).
        case storageFailure
    }

    /// What kind of failure this is; the CLI turns it into an exit code.
    public enum Category: Sendable {
        /// A rule of the store refused the operation (exit code 1).
        case refused
        /// A set or ID does not exist (exit code 2).
        case notFound
        /// The store cannot be used (exit code 3).
        case storeUnusable
        /// The caller passed an invalid argument (exit code 64).
        case invalidInput
    }

    /// The stable code.
    public var code: Code
    /// A message for people.
    public var message: String
    /// The error that caused this one, if any (for example an `LMDBError` from the LMDB layer).
    public var cause: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// The category of ``code``.
    public var category: Category {
        switch code {
        case .quotaExceeded, .capacityExhausted, .rangeExhausted, .duplicateToken, .wrongSet,
            .quotaBelowUsage, .systemSetProtected, .capacityInUse, .alreadyInitialized,
            .duplicateSubscriber, .idFreePending, .duplicateGuest, .guestAlreadyAttached, .setFrozen,
            .setNotFrozen, .exportChecksumMismatch, .exportTruncated, .exportUnsupported, .exportMalformed,
            .exportAlreadyImported, .cannotPlace:
            .refused
        case .noSuchSet, .noSuchID, .noSuchSubscriber, .noSuchHold, .noSuchGuest:
            .notFound
        case .notInitialized, .newerSchema, .corruptStore, .accessDenied, .storageFailure:
            .storeUnusable
        case .invalidArgument:
            .invalidInput
        }
    }

    /// `code: message (cause)`.
    public var description: String {
        if let cause { return "\(code.rawValue): \(message) (\(cause))" }
        return "\(code.rawValue): \(message)"
    }
}
