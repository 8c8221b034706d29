internal import CLMDB

/// A handle to a named database inside an ``Environment``.
///
/// Handles are opened once, through ``Environment/openDatabase(named:create:)``,
/// and stay valid for the life of the environment.
public struct Database: Sendable, Hashable, CustomStringConvertible {
    let dbi: MDB_dbi
    /// The database's name.
    public let name: String

    init(dbi: MDB_dbi, name: String) {
        self.dbi = dbi
        self.name = name
    }

    /// The database's name.
    public var description: String { name }
}

/// How a named database stores its entries; fixed when it is created.
public struct DatabaseFlags: OptionSet, Sendable {
    /// The raw `MDB_*` flags.
    public let rawValue: UInt32
    /// Creates flags from raw `MDB_*` bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `MDB_DUPSORT`: a key may have many values, kept sorted.
    public static let sortedDuplicates = DatabaseFlags(rawValue: UInt32(MDB_DUPSORT))
    /// `MDB_DUPFIXED`: with ``sortedDuplicates``, every value has the same size (packed densely).
    public static let fixedSizeDuplicates = DatabaseFlags(rawValue: UInt32(MDB_DUPFIXED))
}

/// A key and its value, copied out of the map.
public struct Entry: Sendable, Hashable {
    /// The key's bytes.
    public let key: [UInt8]
    /// The value's bytes.
    public let value: [UInt8]

    /// Creates an entry.
    public init(key: [UInt8], value: [UInt8]) {
        self.key = key
        self.value = value
    }
}
