public import Foundation

/// An error from the IOASID store: a stable code, a message saying what is
/// wrong, where it was thrown and, where there is one, the underlying cause
/// (modelled on swift-nio's `FileSystemError`).
///
/// Every refusal leaves the store exactly as it was. The library says what is
/// wrong; what to do about it (and the exit code) is the CLI's business.
public struct IOASIDError: Error, Sendable, CustomStringConvertible, LocalizedError {
    /// A stable, machine-readable error code.
    ///
    /// A struct with static members rather than an enum, so that new codes can
    /// be added without breaking code that handles the existing ones: compare
    /// with `==` (`error.code == .quotaExceeded`) or `switch` with a `default:`.
    /// ``name`` appears in the CLI's `--json` output and never changes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The stable name, for example `quotaExceeded`.
        public let name: String
        /// What kind of failure the code stands for.
        public let category: Category

        private init(_ name: String, _ category: Category) {
            self.name = name
            self.category = category
        }

        /// The name.
        public var description: String { name }

        // Refused by a rule.
        /// The set already holds as many IDs as its quota allows (kernel `-ENOSPC`).
        public static let quotaExceeded = Code("quotaExceeded", .refused)
        /// The requested quota or capacity change does not fit in unreserved capacity (kernel `-ENOSPC`).
        public static let capacityExhausted = Code("capacityExhausted", .refused)
        /// No ID in the requested range is free.
        public static let rangeExhausted = Code("rangeExhausted", .refused)
        /// A live set already has this owner token (kernel `-EEXIST`).
        public static let duplicateToken = Code("duplicateToken", .refused)
        /// The ID belongs to a different set (kernel `-EACCES`).
        public static let wrongSet = Code("wrongSet", .refused)
        /// The new quota is below the number of IDs the set holds (kernel `-EINVAL`).
        public static let quotaBelowUsage = Code("quotaBelowUsage", .refused)
        /// The system set cannot be destroyed or migrated.
        public static let systemSetProtected = Code("systemSetProtected", .refused)
        /// The capacity cannot shrink: an allocated ID or reserved quota lies above the new limit.
        public static let capacityInUse = Code("capacityInUse", .refused)
        /// A subscriber with this name exists.
        public static let duplicateSubscriber = Code("duplicateSubscriber", .refused)
        /// The ID is free-pending: it cannot be retained (kernel `-EBUSY`).
        public static let idFreePending = Code("idFreePending", .refused)
        /// The set already maps this guest ID to another host ID (kernel `-EINVAL`).
        public static let duplicateGuest = Code("duplicateGuest", .refused)
        /// The ID already has a guest ID attached.
        public static let guestAlreadyAttached = Code("guestAlreadyAttached", .refused)
        /// The set is frozen for migration: allocation, free, attach and detach are refused.
        public static let setFrozen = Code("setFrozen", .refused)
        /// The set is not frozen, so there is no migration to complete or abort.
        public static let setNotFrozen = Code("setNotFrozen", .refused)
        /// The export's checksum does not match its contents.
        public static let exportChecksumMismatch = Code("exportChecksumMismatch", .refused)
        /// The export ends before its trailer.
        public static let exportTruncated = Code("exportTruncated", .refused)
        /// The export's format or version is not one this software reads.
        public static let exportUnsupported = Code("exportUnsupported", .refused)
        /// A line of the export is malformed or breaks the format's rules.
        public static let exportMalformed = Code("exportMalformed", .refused)
        /// This export has already been imported into this store.
        public static let exportAlreadyImported = Code("exportAlreadyImported", .refused)
        /// An imported ID could not be placed (no free ID left).
        public static let cannotPlace = Code("cannotPlace", .refused)
        /// The store already holds data and cannot be initialised again.
        public static let alreadyInitialized = Code("alreadyInitialized", .refused)
        /// The subscriber fell behind its lag limit and lapsed: resynchronise it (`resync`) to go on.
        public static let subscriberLapsed = Code("subscriberLapsed", .refused)
        /// The store was restored from a backup since the caller's position: its outbox went back in time.
        public static let storeRestored = Code("storeRestored", .refused)
        /// Other subscribers run after this one: remove them first.
        public static let subscriberHasFollowers = Code("subscriberHasFollowers", .refused)
        /// A wait (for an ID's reclaim) ended at its timeout; nothing was changed by the wait.
        public static let timedOut = Code("timedOut", .refused)

        // Not found.
        /// No live set has this ID.
        public static let noSuchSet = Code("noSuchSet", .notFound)
        /// No allocated ID has this number.
        public static let noSuchID = Code("noSuchID", .notFound)
        /// The set has no such guest ID, or the ID has no guest ID attached.
        public static let noSuchGuest = Code("noSuchGuest", .notFound)
        /// No subscriber has this name.
        public static let noSuchSubscriber = Code("noSuchSubscriber", .notFound)
        /// The holder does not hold this ID.
        public static let noSuchHold = Code("noSuchHold", .notFound)

        // Store unusable.
        /// There is no initialised store at the path.
        public static let notInitialized = Code("notInitialized", .storeUnusable)
        /// The store was written by a newer version of this software.
        public static let newerSchema = Code("newerSchema", .storeUnusable)
        /// The store's records break its invariants or cannot be decoded.
        public static let corruptStore = Code("corruptStore", .storeUnusable)
        /// The store's files cannot be used (permissions, another owner).
        public static let accessDenied = Code("accessDenied", .storeUnusable)
        /// LMDB or the operating system failed (full disk or map, I/O error, …).
        public static let storageFailure = Code("storageFailure", .storeUnusable)
        /// The store is open read-only (read-only media, files or options) and the operation writes.
        public static let readOnly = Code("readOnly", .storeUnusable)
        /// The library broke one of its own rules (a bug); the transaction was rolled back.
        public static let internalError = Code("internalError", .storeUnusable)

        // Invalid input.
        /// An argument is out of its valid range (quota 0, an empty range, ID 0, …).
        public static let invalidArgument = Code("invalidArgument", .invalidInput)

        /// Every code this version of the library knows, for tools and tests.
        package static let known: [Code] = [
            .quotaExceeded, .capacityExhausted, .rangeExhausted, .duplicateToken, .wrongSet, .quotaBelowUsage,
            .systemSetProtected, .capacityInUse, .duplicateSubscriber, .idFreePending, .duplicateGuest,
            .guestAlreadyAttached, .setFrozen, .setNotFrozen, .exportChecksumMismatch, .exportTruncated,
            .exportUnsupported, .exportMalformed, .exportAlreadyImported, .cannotPlace, .alreadyInitialized,
            .subscriberLapsed, .storeRestored, .subscriberHasFollowers, .timedOut,
            .noSuchSet, .noSuchID, .noSuchGuest, .noSuchSubscriber, .noSuchHold,
            .notInitialized, .newerSchema, .corruptStore, .accessDenied, .storageFailure, .readOnly, .internalError,
            .invalidArgument,
        ]

        /// The code with this ``name``, if this version knows it.
        public init?(name: String) {
            guard let code = Self.known.first(where: { $0.name == name }) else { return nil }
            self = code
        }
    }

    /// What kind of failure a code is; the CLI turns it into an exit code.
    public enum Category: Sendable, Hashable {
        /// A rule of the store refused the operation.
        case refused
        /// A set, ID, guest ID, subscriber or hold does not exist.
        case notFound
        /// The store cannot be used as asked.
        case storeUnusable
        /// The caller passed an invalid argument.
        case invalidInput
    }

    /// Where an error was thrown.
    public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
        /// The function.
        public let function: String
        /// The file (`#fileID`).
        public let file: String
        /// The line.
        public let line: Int

        /// `file:line`.
        public var description: String { "\(file):\(line)" }
    }

    /// The stable code.
    public var code: Code
    /// What is wrong, for people.
    public var message: String
    /// The error that caused this one, if any (for example an `LMDBError` from the LMDB layer).
    public var cause: (any Error & Sendable)?
    /// A set this failed operation leaves frozen, when it does: an export that
    /// failed after freezing a set that was frozen before it, or that could not
    /// unfreeze the set again. ``IOASIDStore/abortMigration(of:)`` unfreezes it;
    /// ``IOASIDStore/completeMigration(of:)`` finishes the migration.
    public var setLeftFrozen: SetID?
    /// Where the error was thrown.
    public var location: SourceLocation

    /// Creates an error; the location defaults to the caller's.
    public init(
        _ code: Code, _ message: String, cause: (any Error & Sendable)? = nil,
        function: String = #function, file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.cause = cause
        location = SourceLocation(function: function, file: file, line: line)
    }

    /// The category of ``code``.
    public var category: Category { code.category }

    /// `message (cause)`, for `localizedDescription`.
    public var errorDescription: String? {
        if let cause { return "\(message) (\(cause))" }
        return message
    }

    /// `code: message (cause)`.
    public var description: String {
        if let cause { return "\(code): \(message) (\(cause))" }
        return "\(code): \(message)"
    }
}
